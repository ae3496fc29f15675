"""Stages defend_clip and attack_clip: CLIP's zero-shot digit classifier attacked, defended three ways, attacked again.

* ``defend_clip`` trains TeCoA, the visual prompt and LoRA (:mod:`.clip_zero_shot`) on the one-object
  train scenes with the same budget (images, epochs, training PGD, ε) from the ``plain`` train_clip run.
* ``attack_clip`` scores the plain CLIP and every defense the same way, on the one-object test scenes:
  FGSM and PGD budget curves over ``attack.eps`` (PGD pruned: a scene broken at a smaller ε is not
  attacked again, so the PGD curve is the budget curve alone, at a fraction of the cost; the grid, PGD steps and α of attack_classifiers, so
  ``-S attack.pgd.steps=20`` reruns the attacks and nothing that trains), PGD at the defenses' ε on every
  held-out (digit, colour) scene, and the whole clean evaluate_clip benchmark per model (digit and colour
  zero-shot, colour and relation binding over the two-object templates, retrieval; also on the held-out
  pairs): what robustness costs the zero-shot generality CLIP is for.

At ε = 0 the plain CLIP's curve is its evaluate_clip digit accuracy: checked, or the stage stops.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genpipe.clip import model as clip_model
from genpipe.clip.evaluate import Scorer, benchmark
from genpipe.pipeline import io
from genpipe.pipeline.determinism import set_determinism
from genpipe.robustness import lora
from genpipe.robustness.adversarial import check_eps, pgd
from genpipe.robustness.classifiers import AttackError, _two_se, attack_model, batched, check_params, curve_rows, curve_summary, labels
from genpipe.robustness.clip_zero_shot import (DEFENSES, PadPrompt, PromptedCLIP, ZeroShot, adversarial_finetune, digit_classes,
                                               pixels, single_objects)
from genpipe.scenes.dataset import load_scenes

PROMPT_NAME = "prompt.safetensors"
LORA_NAME = "lora.safetensors"
LABELS = {"plain": "CLIP (plain), no defense", "tecoa": "TeCoA: image tower fine-tuned", "prompt": "visual prompt (border pixels)",
          "lora": "LoRA on the attention projections"}


def defend_stage(clip_dir: Path, scenes_dir: Path, out: Path, p: dict[str, Any], templates: dict[str, Sequence[str]],
                 progress: bool = True) -> dict[str, Any]:
    """Stage defend_clip: tecoa/ and lora/ (open_clip directories; lora/ also its matrices), prompt/prompt.safetensors,
    curves.tsv (per logged step, each defense's adversarial loss and accuracy on its training batches), metrics.json (last)."""
    check_eps(p["eps"], "defend_clip.eps")
    if p["eps"] == 0:
        raise AttackError("defend_clip.eps: 0 trains nothing adversarial; give the budget the defenses train and are scored at")
    scenes = load_scenes(scenes_dir / "train.npz")
    idx, digits, _ = single_objects(scenes)
    if p["n_train"] is not None:
        idx, digits = idx[: p["n_train"]], digits[: p["n_train"]]
    images = scenes.images[idx]
    rows: list[dict[str, Any]] = []  # one per logged step (the same steps for every defense: the same budget)
    summary = {}
    for defense in p["defenses"]:
        set_determinism(p["seed"])
        clip, cfg = clip_model.load(clip_dir)
        classes = digit_classes(clip, cfg["text_cfg"]["context_length"], templates)
        zs, prompt, r, summary[defense] = adversarial_finetune(defense, clip, classes, images, digits, p, progress)
        if not rows:
            rows = [{"step": row["step"]} for row in r]
        for wide, row in zip(rows, r):
            wide[f"{defense}_adv_loss"], wide[f"{defense}_adv_train_accuracy"] = row["adv_loss"], row["adv_train_accuracy"]
        d = out / defense
        if defense == "prompt":
            io.save_tensors(d / PROMPT_NAME, {"delta": prompt.pattern().detach().contiguous()}, {"width": prompt.width})
        else:
            if defense == "lora":
                io.save_tensors(d / LORA_NAME, lora.state(clip.visual), {"rank": p["lora"]["rank"], "alpha": p["lora"]["alpha"]})
                lora.merge(clip.visual)
            clip_model.save(clip, cfg, d)
    io.write_tsv(out / "curves.tsv", rows)
    metrics = {"clip": str(clip_dir), "eps": p["eps"], "n_train": len(idx), "epochs": p["epochs"], "batch_size": p["batch_size"],
               "pgd": p["pgd"], "precision": p["precision"], "threads": torch.get_num_threads(), "defenses": summary}
    io.write_json(out / "metrics.json", metrics)
    return metrics


def load_prompt(path: Path) -> PadPrompt:
    tensors, meta = io.load_tensors(path)
    if meta is None or "width" not in meta or "delta" not in tensors:
        raise AttackError(f"{path}: not a defend_clip prompt (needs a 'delta' tensor and a 'width' in its metadata)")
    prompt = PadPrompt(tensors["delta"].shape[-1], int(meta["width"]), tensors["delta"].shape[1])
    prompt.delta.data.copy_(tensors["delta"])
    return prompt.eval()


def load_models(clip_dir: Path, defend_dir: Path, defenses: Sequence[str]) -> tuple[dict[str, tuple[nn.Module, PadPrompt | None]], dict[str, Any]]:
    """name -> (open_clip CLIP, prompt or None) for the plain run and every defense; each defended tower must have the plain run's shape."""
    plain, cfg = clip_model.load(clip_dir)
    models: dict[str, tuple[nn.Module, PadPrompt | None]] = {"plain": (plain, None)}
    for d in defenses:
        if d not in DEFENSES:
            raise AttackError(f"unknown model {d!r} (known: {', '.join(DEFENSES)})")
        if d == "prompt":
            models[d] = (plain, load_prompt(defend_dir / d / PROMPT_NAME))
        else:
            models[d] = (clip_model.load(defend_dir / d, expected=cfg)[0], None)
    for clip, _ in models.values():
        clip.requires_grad_(False)
    return models, cfg


@dataclass
class SharedTextScorer(Scorer):
    """A :class:`Scorer` whose text embeddings come from ``cache`` when already computed: the defenses keep the plain run's
    text tower, so the benchmark's ~20,000 captions are encoded once for all of them (only for towers equal to it)."""

    cache: dict[tuple[str, ...], torch.Tensor] = field(default_factory=dict)

    def texts(self, texts: Sequence[str]) -> torch.Tensor:
        key = tuple(texts)
        if key not in self.cache:
            self.cache[key] = super().texts(texts)
        return self.cache[key]


def same_text_tower(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(v, sb[k]) for k, v in sa.items() if not k.startswith("visual."))


def observation(models: dict[str, Any], eps: float) -> dict[str, Any]:
    """The defenses against the plain CLIP at the defenses' ε, as data: robust accuracy and its ratio to plain's (TeCoA's
    target: >= 3x), the clean cost, the best defense, and what each costs the zero-shot benchmark (points vs plain)."""
    key = str(eps)
    robust = {m: v["pgd"]["accuracy"][key] for m, v in models.items()}
    clean = {m: v["clean_accuracy"] for m, v in models.items()}
    base, n = robust["plain"], models["plain"]["pgd"]["n"]
    obs: dict[str, Any] = {"eps": eps, "robust_accuracy": robust, "clean_accuracy": clean, "ratio_to_plain": {}, "clean_cost": {},
                           "significant": {}, "zero_shot_cost": {}}
    for m in models:
        if m == "plain":
            continue
        obs["ratio_to_plain"][m] = round(robust[m] / base, 3) if base > 0 else (math.inf if robust[m] > 0 else None)
        obs["clean_cost"][m] = round(clean["plain"] - clean[m], 6)
        obs["significant"][m] = bool(robust[m] - base > _two_se(robust[m], base, n))
        zs, zp = models[m]["zero_shot"]["all"], models["plain"]["zero_shot"]["all"]
        obs["zero_shot_cost"][m] = {k: round(zp[k] - zs[k], 4) for k in zp if not k.endswith("_n") and zp[k] is not None and zs[k] is not None}
    defended = [m for m in models if m != "plain"]
    obs["most_robust"] = max(defended, key=lambda m: robust[m]) if defended else None
    tecoa = obs["ratio_to_plain"].get("tecoa")
    obs["tecoa_target_met"] = None if tecoa is None else bool(tecoa >= 3 and obs["significant"]["tecoa"])
    return obs


def attack_stage(clip_dir: Path, defend_dir: Path, clip_metrics: Path, scenes_dir: Path, attack_p: dict[str, Any], ap: dict[str, Any],
                 dp: dict[str, Any], eval_p: dict[str, Any], templates: dict[str, Sequence[str]],
                 held_out: set[tuple[int, int]]) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Stage attack_clip: metrics, curves rows and what the figures need (see the module docstring)."""
    grid = check_params(attack_p)
    eps = dp["eps"]
    if eps not in grid:
        raise AttackError(f"defend_clip.eps: {eps} is not in attack.eps {grid} (the defenses are scored on that grid)")
    models, cfg = load_models(clip_dir, defend_dir, dp["defenses"])
    classes = digit_classes(models["plain"][0], cfg["text_cfg"]["context_length"], templates)
    scenes = load_scenes(scenes_dir / "test.npz")
    idx, y_np, ho = single_objects(scenes, held_out)
    x, y = pixels(scenes.images[idx]), torch.from_numpy(y_np)
    n = {"fgsm": min(ap["n_fgsm"] or len(idx), len(idx)), "pgd": min(ap["n_pgd"], len(idx)), "held_out": int(ho.sum())}
    p = {**attack_p, "batch_size": ap["batch_size"], "transfer_eps": eps}
    q = attack_p["pgd"]
    g = torch.Generator().manual_seed(attack_p["seed"])
    start = torch.rand(x[: n["pgd"]].shape, generator=g) * 2 - 1  # one random start per image, shared by every eps and model
    x_ho, y_ho = x[torch.from_numpy(ho)], y[torch.from_numpy(ho)]
    start_ho = torch.rand(x_ho.shape, generator=g) * 2 - 1
    t0, c0 = time.perf_counter(), time.process_time()
    out: dict[str, Any] = {}
    rows = [{"eps": e} for e in grid]
    adv, zero_shots, texts = {}, {}, {}
    for name, (clip, prompt) in models.items():
        ts = time.perf_counter()
        zs = zero_shots[name] = ZeroShot(clip.visual, classes, clip.logit_scale.exp().item(), prompt, channels_last=False).eval()
        correct, _ = attack_model(name, zs, x, y, grid, p, n, start, prune=True)
        alpha = q["alpha_ratio"] * eps / q["steps"]
        x_adv = batched(lambda xb, yb, rows: pgd(zs, xb, yb, eps, q["steps"], alpha, q["random_start"], start_ho[rows]), x_ho, y_ho,
                        p["batch_size"]) if len(x_ho) else x_ho
        k = ap["examples"]
        adv[name] = {"pgd": pgd(zs, x[:k], y[:k], eps, q["steps"], alpha, q["random_start"], start[:k])}
        scorer = SharedTextScorer(PromptedCLIP(clip, prompt) if prompt is not None else clip, context_length=cfg["text_cfg"]["context_length"],
                                  batch_size=eval_p["batch_size"], cache=texts if same_text_tower(clip, models["plain"][0]) else {})
        bench, _ = benchmark(scorer, scenes, eval_p, templates, held_out)
        m = out[name] = {"label": LABELS[name], "clean_accuracy": bench["all"]["digit_accuracy"], "clean_n": bench["all"]["digit_accuracy_n"],
                         "zero_shot": bench}
        for a in ("fgsm", "pgd"):
            m[a] = curve_summary(correct[a], grid, n[a])
            curve_rows(rows, f"{name}_{a}", m[a])
        m["held_out"] = {"n": n["held_out"], "eps": eps, "clean": round((labels(zs, x_ho) == y_ho).float().mean().item(), 6) if len(x_ho) else None,
                         "pgd": round((labels(zs, x_adv) == y_ho).float().mean().item(), 6) if len(x_ho) else None}
        print(f"attack_clip {name}: clean {100 * m['clean_accuracy']:.2f} %, PGD at {eps:g} {100 * m['pgd']['accuracy'][str(eps)]:.2f} % "
              f"({time.perf_counter() - ts:.0f} s)", file=sys.stderr)
    check = clean_check(out["plain"], io.read_json(clip_metrics), correct_fgsm0=out["plain"]["fgsm"]["accuracy"][str(grid[0])], n_fgsm=n["fgsm"])
    metrics = {"variant": "plain", "eps": grid, "defense_eps": eps, "n": n, "pgd": {k: q[k] for k in ("steps", "alpha_ratio", "random_start")},
               "seed": attack_p["seed"], "models": out, "clean_check": check, "observation": observation(out, eps),
               "seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": round(time.process_time() - c0, 1), "threads": torch.get_num_threads()}
    return metrics, rows, {"x": x, "y": y, "adv": adv, "zero_shots": zero_shots}


def clean_check(plain: dict[str, Any], clip_metrics: dict[str, Any], correct_fgsm0: float, n_fgsm: int) -> dict[str, Any]:
    """The plain CLIP's zero-shot digit accuracy here must be evaluate_clip's (same model, scenes and prompts), and the curves'
    ε = 0 point (the attacked module, on all one-object scenes) must equal it."""
    own, here = clip_metrics["all"]["digit_accuracy"], plain["clean_accuracy"]
    if here != own:
        raise AttackError(f"the plain CLIP's zero-shot digit accuracy is {here} here but {own} in evaluate_clip's metrics.json: "
                          "not the model or test scenes it scored")
    equal = n_fgsm != plain["clean_n"] or round(correct_fgsm0, 4) == here
    if not equal:
        raise AttackError(f"the attacked zero-shot classifier scores {correct_fgsm0:.6f} at ε = 0 on the {n_fgsm} one-object test scenes, "
                          f"evaluate_clip {here}")
    return {"n": plain["clean_n"], "accuracy": here, "evaluate_clip_accuracy": own, "curve_at_0": correct_fgsm0, "equal": True}
