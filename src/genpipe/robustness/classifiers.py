"""Stage attack_classifiers: FGSM and PGD on the Fashion-MNIST ResNet and the supervised ViT.

Both models are attacked in the same [0, 1] pixel space (normalisation inside :class:`PixelInput`)
on the same first test images:

* the **budget curve** per model and attack: an image counts as robust at eps only if it is
  classified correctly under the attack at every grid value up to eps (what an attacker allowed
  any perturbation within eps achieves, so it cannot rise); the raw curve (the attack at exactly
  eps) is kept beside it, with its largest rise reported, not hidden;
* the **transfer matrix** at ``transfer_eps``: adversarial images made on the source model,
  accuracy of the target, for FGSM and PGD, beside random ±eps sign noise of the same budget;
* at eps = 0 every curve must equal the model's own clean test predictions (its stage's
  predictions.npz, whose accuracy is its metrics.json's): checked here, or the stage stops.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from genpipe.classify import classifier, vit_stage
from genpipe.classify.train import predict
from genpipe.data import datasets as data
from genpipe.pipeline import io
from genpipe.robustness.adversarial import PixelInput, check_eps, grad_sign, pgd

ATTACKS = ("fgsm", "pgd")
DATASET = "fashion_mnist"


class AttackError(ValueError):
    """A bad model name, run directory or parameter combination, named in one line."""


def _resnet(run_dir: Path) -> tuple[nn.Module, dict[str, Any]]:
    model, cfg = classifier.load_model(run_dir)
    return PixelInput(model, cfg["input_mean"], cfg["input_std"]), cfg


def _vit(run_dir: Path) -> tuple[nn.Module, dict[str, Any]]:
    model, cfg = vit_stage.load_model(run_dir)  # trained and scored on contiguous input (vit_stage.run)
    return PixelInput(model, cfg["input_mean"], cfg["input_std"], memory_format=torch.contiguous_format), cfg


# model name -> loader of its run directory (train_classifier/fashion_mnist, train_vit)
LOADERS: dict[str, Callable[[Path], tuple[nn.Module, dict[str, Any]]]] = {"resnet": _resnet, "vit": _vit}


@dataclass
class Target:
    """A model under attack, with its own stage's clean test results."""

    name: str
    model: nn.Module
    label: str            # e.g. "ResNet-8 (bn)", "ViT (dim 64, depth 6, patch 4)"
    metrics: dict[str, Any]  # its metrics.json
    y_pred: torch.Tensor  # its predictions.npz: clean test predictions of the first metrics["test"]["n"] images
    y_true: torch.Tensor


def load_target(name: str, run_dir: Path) -> Target:
    if name not in LOADERS:
        raise AttackError(f"unknown model {name!r} (known: {', '.join(LOADERS)})")
    for f in ("model.safetensors", "config.json", "metrics.json", "predictions.npz"):
        if not (run_dir / f).is_file():
            raise AttackError(f"model {name!r}: {run_dir / f} not found (is {run_dir} a run directory of its stage?)")
    model, cfg = LOADERS[name](run_dir)
    if cfg.get("dataset") != DATASET:
        raise AttackError(f"model {name!r} in {run_dir} was trained on {cfg.get('dataset')!r}, not {DATASET!r}")
    metrics = io.read_json(run_dir / "metrics.json")
    with np.load(run_dir / "predictions.npz") as npz:
        y_pred, y_true = torch.from_numpy(npz["y_pred"].astype(np.int64)), torch.from_numpy(npz["y_true"].astype(np.int64))
    if name == "resnet":
        label = f"ResNet-{6 * cfg['depth_n'] + 2} ({cfg['norm']}, width {cfg['width']})"
    else:
        label = f"ViT (dim {cfg['dim']}, depth {cfg['depth']}, patch {cfg['patch_size']})"
    return Target(name, model.eval(), label, metrics, y_pred, y_true)


def check_params(p: dict[str, Any]) -> list[float]:
    """The eps grid, sorted; constraints between the attack keys the schema cannot express."""
    grid = sorted(p["eps"])
    for e in grid:
        check_eps(e, "attack.eps")
    if len(set(grid)) != len(grid):
        raise AttackError(f"attack.eps: {p['eps']} repeats a value")
    if grid[0] != 0:
        raise AttackError(f"attack.eps: {p['eps']} lacks 0 (the clean point every curve is checked against)")
    check_eps(p["transfer_eps"], "attack.transfer_eps")
    if p["transfer_eps"] not in grid:
        raise AttackError(f"attack.transfer_eps: {p['transfer_eps']} is not in attack.eps {grid} (the transfer matrix reuses those attacks)")
    return grid


def batched(fn: Callable[[torch.Tensor, torch.Tensor, slice], torch.Tensor], x: torch.Tensor, y: torch.Tensor, batch_size: int) -> torch.Tensor:
    """fn(x_batch, y_batch, rows) over batches of x, concatenated."""
    return torch.cat([fn(x[i : i + batch_size], y[i : i + batch_size], slice(i, i + batch_size)) for i in range(0, len(x), batch_size)])


def labels(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Predicted labels, batched as each model's own stage scored its test split (classify.train.predict)."""
    return predict(model, x).argmax(1)


def budget(correct: list[torch.Tensor]) -> list[float]:
    """Budget curve from per-eps correctness (grid sorted): robust at eps = correct at every eps' <= eps."""
    robust = torch.ones_like(correct[0])
    out = []
    for c in correct:
        robust &= c
        out.append(round(robust.float().mean().item(), 6))
    return out


def max_rise(curve: list[float]) -> float:
    return round(max([0.0] + [b - a for a, b in zip(curve, curve[1:])]), 6)


def curve_summary(correct: list[torch.Tensor], grid: list[float], n: int) -> dict[str, Any]:
    """metrics.json's entry of one model and attack from its per-eps correctness: the budget curve, the raw one (the
    attack at exactly eps), the raw curve's largest rise and the mean accuracy over the grid (normalised area)."""
    curve, raw = budget(correct), [round(c.float().mean().item(), 6) for c in correct]
    span = grid[-1] - grid[0]
    mean = float(np.trapezoid(curve, grid) / span) if span else curve[0]
    return {"n": n, "accuracy": dict(zip(map(str, grid), curve)), "accuracy_raw": dict(zip(map(str, grid), raw)),
            "raw_max_increase": max_rise(raw), "mean_accuracy": round(mean, 6)}


def curve_rows(rows: list[dict[str, Any]], column: str, summary: dict[str, Any]) -> None:
    """curves.tsv's columns ``<column>`` (budget) and ``<column>_raw``, one row per eps."""
    for row, c, r in zip(rows, summary["accuracy"].values(), summary["accuracy_raw"].values()):
        row[column], row[f"{column}_raw"] = c, r


def attack_model(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, grid: list[float], p: dict[str, Any],
                 n: dict[str, int], start: torch.Tensor, prune: bool = False) -> tuple[dict[str, list[torch.Tensor]], dict[str, torch.Tensor]]:
    """Per attack: correctness per eps of the grid (on its first n[attack] images), and its adversarial
    images at transfer_eps (what the transfer matrix feeds the other model). ``model`` takes [0, 1] pixels;
    ``p``: the attack section (eps grid, pgd, batch_size, transfer_eps)."""
    bs, correct, adv = p["batch_size"], {}, {}
    xf, yf = x[: n["fgsm"]], y[: n["fgsm"]]
    sign = batched(lambda xb, yb, _: grad_sign(model, xb, yb), xf, yf, bs)  # one gradient serves every eps
    correct["fgsm"] = []
    for eps in grid:
        x_adv = (xf + eps * sign).clamp(0.0, 1.0) if eps else xf  # = adversarial.fgsm(model, x, y, eps), batched
        correct["fgsm"].append(labels(model, x_adv) == yf)
        if eps == p["transfer_eps"]:
            adv["fgsm"] = x_adv
    q = p["pgd"]
    xp, yp = x[: n["pgd"]], y[: n["pgd"]]
    correct["pgd"] = []
    for eps in grid:
        t0 = time.perf_counter()
        # prune: only the images still robust at the previous eps are attacked (the rest count as broken): the
        # budget curve itself at a fraction of the cost, without the raw one; adv holds the attacked rows' images
        alive = correct["pgd"][-1].nonzero().squeeze(1) if prune and correct["pgd"] else torch.arange(len(xp))
        if eps:
            alpha = q["alpha_ratio"] * eps / q["steps"]
            x_adv = xp.clone()
            x_adv[alive] = batched(lambda xb, yb, rows: pgd(model, xb, yb, eps, q["steps"], alpha, q["random_start"], start[alive[rows]]),
                                   xp[alive], yp[alive], bs) if len(alive) else xp[alive]
        else:
            x_adv = xp
        c = torch.zeros(len(xp), dtype=torch.bool)
        c[alive] = labels(model, x_adv[alive]) == yp[alive] if len(alive) else c[alive]
        correct["pgd"].append(c)
        if eps == p["transfer_eps"]:
            adv["pgd"] = x_adv
        print(f"{name}: PGD eps {eps:g}: {100 * correct['pgd'][-1].float().mean().item():.2f} % ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return correct, adv


def clean_check(t: Target, correct0: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """eps = 0 against the model's own stage: same test labels, and the same accuracy as its predictions.npz
    on these images (= its metrics.json test accuracy when all its test images are used)."""
    n = len(correct0)
    if not torch.equal(t.y_true[:n], y[:n]):
        raise AttackError(f"model {t.name!r}: its predictions.npz holds other test labels than the Fashion-MNIST test split")
    own = (t.y_pred[:n] == t.y_true[:n]).float().mean().item()
    here = correct0.float().mean().item()
    if here != own or (n == t.metrics["test"]["n"] and round(here, 6) != round(t.metrics["test"]["accuracy"], 6)):
        raise AttackError(f"model {t.name!r}: accuracy at eps = 0 on {n} test images is {here:.6f}, but its own stage "
                          f"scored {own:.6f} on them (metrics.json: {t.metrics['test']['accuracy']:.6f} on {t.metrics['test']['n']})")
    return {"n": n, "accuracy": round(here, 6), "own_accuracy": round(own, 6), "equal": True}


def sign_noise(x: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    """x + eps * (random ±1 per pixel), clipped to [0, 1]: the transfer matrix's no-information baseline."""
    g = torch.Generator().manual_seed(seed)
    return (x + eps * (torch.randint(0, 2, x.shape, generator=g) * 2 - 1).to(x.dtype)).clamp(0.0, 1.0)


def eps_at_half(curve: list[float], grid: list[float]) -> float | None:
    """The eps at which a budget curve falls to half its clean (eps = 0) value, linearly interpolated on the grid."""
    half = curve[0] / 2
    for (e0, a0), (e1, a1) in zip(zip(grid, curve), zip(grid[1:], curve[1:])):
        if a1 <= half:
            return round(e0 + (e1 - e0) * (a0 - half) / (a0 - a1), 6) if a0 > a1 else e1
    return None


def _two_se(p: float, q: float, n: int) -> float:
    """Twice the standard error of a difference of two accuracies on n images each."""
    return 2 * math.sqrt(max(p * (1 - p) + q * (1 - q), 1e-12) / n)


def observation(models: dict[str, Any], transfer: dict[str, Any], grid: list[float], eps: float) -> dict[str, Any]:
    """The comparison as data.

    * ``more_robust``: per attack, the model whose budget curve holds more accuracy over the whole grid
      (``mean_accuracy_over_eps``, the normalised area under it); ``robust_margin`` the difference;
    * ``at_eps``: the same at the default eps alone, "tie" when the gap is within twice its standard error
      (PGD drives both models to ~0 there when eps is large);
    * ``eps_at_half_accuracy``: where each budget curve falls to half its clean accuracy;
    * transfer, per attack and source -> target pair: ``transfer_gap`` = target accuracy on the source's
      images minus on its own (white-box) ones, ``transfer_drop_vs_noise`` = accuracy under sign noise of the
      same eps minus on the source's images, and ``transfers`` = that drop exceeds twice its standard error.
    """
    key, names = str(eps), list(models)
    obs: dict[str, Any] = {"eps": eps, "more_robust": {}, "robust_margin": {}, "at_eps": {}, "transfer_gap": {},
                           "transfer_drop_vs_noise": {}, "transfers": {}}
    obs["mean_accuracy_over_eps"] = {m: {a: models[m][a]["mean_accuracy"] for a in ATTACKS} for m in names}
    obs["eps_at_half_accuracy"] = {m: {a: eps_at_half(list(models[m][a]["accuracy"].values()), grid) for a in ATTACKS} for m in names}
    for a in ATTACKS:
        area = {m: models[m][a]["mean_accuracy"] for m in names}
        best, worst = max(names, key=lambda m: area[m]), min(names, key=lambda m: area[m])
        obs["more_robust"][a] = best if area[best] > area[worst] else "tie"
        obs["robust_margin"][a] = round(area[best] - area[worst], 6)
        acc = {m: models[m][a]["accuracy"][key] for m in names}
        best, worst = max(names, key=lambda m: acc[m]), min(names, key=lambda m: acc[m])
        margin = acc[best] - acc[worst]
        significant = margin > _two_se(acc[best], acc[worst], models[best][a]["n"])
        obs["at_eps"][a] = {"more_robust": best if significant else "tie", "margin": round(margin, 6), "significant": significant}
        tr = transfer[a]
        for s in names:
            for t in names:
                if s == t:
                    continue
                pair, got, noise = f"{s}_to_{t}", tr["accuracy"][s][t], tr["noise"][t]
                obs["transfer_gap"].setdefault(a, {})[pair] = round(got - tr["accuracy"][t][t], 6)
                obs["transfer_drop_vs_noise"].setdefault(a, {})[pair] = round(noise - got, 6)
                obs["transfers"].setdefault(a, {})[pair] = bool(noise - got > _two_se(noise, got, tr["n"]))
    return obs


def run(runs: dict[str, Path], data_root: Path, p: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Attack every model of ``runs`` (name -> run directory) with params ``p`` (the attack section).

    Returns metrics, the curves rows (one per eps) and what the figures need."""
    grid = check_params(p)
    if len(runs) < 2:
        raise AttackError(f"need two models for the transfer matrix, got {list(runs)}")
    targets = {name: load_target(name, d) for name, d in runs.items()}
    spec = data.get_spec(DATASET)
    x_u8, y = data.load_split(spec, data_root, train=False)
    x = x_u8.float().div(255.0).unsqueeze(1)  # (N, 1, 28, 28) in [0, 1]; the models' own to_input, before normalising
    scored = min(t.metrics["test"]["n"] for t in targets.values())
    n = {}
    for a in ATTACKS:
        n[a] = p[a]["n"] or scored
        if n[a] > scored:
            raise AttackError(f"attack.{a}.n: {n[a]} is more than the {scored} test images every model was scored on (their eval_limit)")
    torch.manual_seed(p["seed"])
    g = torch.Generator().manual_seed(p["seed"])
    start = torch.rand(x[: n["pgd"]].shape, generator=g) * 2 - 1  # PGD's random start, shared by every eps and model
    t0, c0 = time.perf_counter(), time.process_time()
    correct, adv, checks = {}, {}, {}
    for name, t in targets.items():
        ts = time.perf_counter()
        correct[name], adv[name] = attack_model(name, t.model, x, y, grid, p, n, start)
        checks[name] = {a: clean_check(t, correct[name][a][0], y) for a in ATTACKS}
        print(f"{name}: attacked in {time.perf_counter() - ts:.1f} s", file=sys.stderr)

    models: dict[str, Any] = {}
    rows = [{"eps": e} for e in grid]
    for name, t in targets.items():
        models[name] = {"label": t.label, "clean_accuracy": t.metrics["test"]["accuracy"], "clean_n": t.metrics["test"]["n"]}
        for a in ATTACKS:
            models[name][a] = curve_summary(correct[name][a], grid, n[a])
            curve_rows(rows, f"{name}_{a}", models[name][a])

    eps = p["transfer_eps"]
    transfer: dict[str, Any] = {}
    for a in ATTACKS:
        xa, ya = x[: n[a]], y[: n[a]]
        acc = {s: {t: round((labels(targets[t].model, adv[s][a]) == ya).float().mean().item(), 6) for t in targets} for s in targets}
        noisy = sign_noise(xa, eps, p["seed"] + 1)
        noise = {t: round((labels(targets[t].model, noisy) == ya).float().mean().item(), 6) for t in targets}
        clean = {t: round(correct[t][a][0].float().mean().item(), 6) for t in targets}
        transfer[a] = {"n": n[a], "eps": eps, "accuracy": acc, "noise": noise, "clean": clean}
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0

    metrics = {"dataset": DATASET, "eps": grid, "transfer_eps": eps, "n": n,
               "pgd": {k: p["pgd"][k] for k in ("steps", "alpha_ratio", "random_start")}, "seed": p["seed"],
               "models": models, "transfer": transfer, "clean_check": checks,
               "observation": observation(models, transfer, grid, eps),
               "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "threads": torch.get_num_threads()}
    figures = {"targets": targets, "x": x, "y": y, "adv": adv, "correct": correct, "classes": spec.classes}
    return metrics, rows, figures


def examples(fig: dict[str, Any], eps: float, per_model: int) -> list[dict[str, Any]]:
    """The first test images each model gets right clean but wrong under PGD at eps (its transfer examples)."""
    panels = []
    for name, t in fig["targets"].items():
        adv_p, adv_f = fig["adv"][name]["pgd"], fig["adv"][name]["fgsm"]
        m = min(len(adv_p), len(adv_f))
        x, y = fig["x"][:m], fig["y"][:m]
        pred_p, pred_f = labels(t.model, adv_p[:m]), labels(t.model, adv_f[:m])
        ok = fig["correct"][name]["pgd"][0][:m] & (pred_p != y)
        for i in ok.nonzero().squeeze(1)[:per_model].tolist():
            panels.append({"model": name, "label": int(y[i]), "clean": x[i, 0].numpy(), "fgsm": adv_f[i, 0].numpy(), "pgd": adv_p[i, 0].numpy(),
                           "pred_fgsm": int(pred_f[i]), "pred_pgd": int(pred_p[i])})
    return panels
