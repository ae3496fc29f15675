"""Stage train_vit: a Vision Transformer (models/vit.py) trained supervised on Fashion-MNIST.

The ViT row of the CNN-vs-ViT comparison: the same split, input normalisation, evaluation and
files as ``train_classifier`` (model.safetensors + config.json, curves.tsv, predictions.npz,
metrics.json with accuracy / micro-F1 / macro-F1 on train, val and test, written last), trained as
ViTs are: AdamW, linear warm-up then cosine decay per step, label smoothing, and light augmentation
(random crop from a zero-padded image, horizontal flip) drawn from a seeded generator.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from genpipe.classify.train import evaluate, param_groups, predict, scores, to_input
from genpipe.data import datasets as data
from genpipe.models.vit import ViT, ViTConfig, count_parameters
from genpipe.pipeline import io
from genpipe.pipeline.checkpoint import load_state, save_state
from genpipe.pipeline.determinism import set_determinism

NET_KEYS = ("patch_size", "dim", "depth", "heads", "mlp_ratio", "dropout")


def build(p: dict[str, Any], image_size: int, num_classes: int) -> ViT:
    return ViT(ViTConfig(image_size=image_size, in_channels=1, num_classes=num_classes, **{k: p[k] for k in NET_KEYS}))


def load_model(run_dir: Path, expected: dict[str, Any] | None = None) -> tuple[ViT, dict[str, Any]]:
    """The trained ViT of a run directory (eval mode) and its config; a config differing from
    ``expected`` stops naming the keys (io.ConfigMismatchError)."""
    state, config = io.load_state(run_dir / "model.safetensors", run_dir / "config.json", expected)
    keys = ViTConfig.__dataclass_fields__
    model = ViT(ViTConfig(**{k: v for k, v in config.items() if k in keys}))
    model.load_state_dict(state)
    return model.eval(), config


def lr_lambda(warmup: int, total: int):
    """Multiplier of the peak lr at a step: linear warm-up over ``warmup`` steps, then cosine to 0."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
    return f


def augment(x: torch.Tensor, pad: int, flip: bool, fill: float, g: torch.Generator) -> torch.Tensor:
    """Random crop of the ``pad``-padded image back to its size, and a horizontal flip with p = 1/2.

    x: (B, 1, H, W); ``fill`` is the padding value (the normalised black background).
    """
    b, _, h, w = x.shape
    if pad:
        xp = F.pad(x, (pad, pad, pad, pad), value=fill)  # (B, 1, H + 2p, W + 2p)
        dy, dx = torch.randint(0, 2 * pad + 1, (2, b), generator=g)
        rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (B, H, 1)
        cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (B, 1, W)
        x = xp[torch.arange(b)[:, None, None], 0, rows, cols][:, None]  # (B, 1, H, W)
    if flip:
        mirror = torch.rand(b, generator=g) < 0.5
        x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
    return x


def params_key(p: dict[str, Any]) -> str:
    """Identifies the run a checkpoint belongs to: every train_vit param (epochs too: the cosine spans them)."""
    return hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest()[:16]


def train_vit(model: ViT, p: dict[str, Any], train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
              num_classes: int, fill: float, dev: torch.device, checkpoint: Path | None = None) -> list[dict[str, float]]:
    """AdamW with warm-up + cosine, one curves row per epoch. Batch order and augmentation come from
    generators seeded by ``p['seed']`` and the epoch, so they depend on nothing but the params.

    With ``checkpoint``, the state after each epoch is saved there, and a run started again with the
    same params continues after the last saved epoch, with the same result as not stopping.
    """
    x, y = train
    n = len(x)
    steps_per_epoch = math.ceil(n / p["batch_size"])
    total = p["epochs"] * steps_per_epoch
    opt = torch.optim.AdamW(param_groups(model, p["weight_decay"]), lr=p["lr"], betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(min(p["warmup_steps"], total), total))
    rows: list[dict[str, float]] = []
    key = params_key(p)
    if checkpoint is not None and checkpoint.exists():
        ck = load_state(checkpoint)  # plain tensors only; a payload or a corrupt file -> CheckpointError
        if ck.get("key") == key:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["opt"])
            sched.load_state_dict(ck["sched"])
            torch.set_rng_state(ck["torch_rng"])  # dropout's
            rows = ck["rows"]
            print(f"resuming from {checkpoint} after epoch {len(rows)}", file=sys.stderr)
        else:
            print(f"ignoring {checkpoint}: written with other params ({ck.get('key')} != {key})", file=sys.stderr)
    for epoch in range(len(rows) + 1, p["epochs"] + 1):
        model.train()
        g = torch.Generator().manual_seed(p["seed"] * 1000 + epoch)
        perm = torch.randperm(n, generator=g)
        loss_sum, correct = 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{p['epochs']}", unit="batch", mininterval=5.0, leave=True)
        for step in bar:
            idx = perm[step * p["batch_size"] : (step + 1) * p["batch_size"]]
            xb = augment(x[idx], p["crop_padding"], p["flip"], fill, g).to(dev)
            yb = y[idx].to(dev)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=p["label_smoothing"])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}, step {step}; lower train_vit.lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if p["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), p["grad_clip"])
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{sched.get_last_lr()[0]:.3g}", refresh=False)
        val_loss, val_m = evaluate(model, val[0].to(dev), val[1].to(dev), num_classes)
        rows.append({"epoch": epoch, "train_loss": round(loss_sum / n, 6), "train_accuracy": round(correct / n, 6),
                     "val_loss": round(val_loss, 6), "val_accuracy": round(val_m["accuracy"], 6)})
        print(f"epoch {epoch}: " + ", ".join(f"{k} {v}" for k, v in rows[-1].items() if k != "epoch"), file=sys.stderr)
        if checkpoint is not None:
            save_state(checkpoint, {"key": key, "rows": rows, "model": model.state_dict(), "opt": opt.state_dict(),
                                    "sched": sched.state_dict(), "torch_rng": torch.get_rng_state()})
    return rows


def run(data_root: Path, out: Path, p: dict[str, Any], dataset: str = "fashion_mnist", checkpoint: Path | None = None) -> dict[str, Any]:
    """Train and evaluate the ViT with params ``p`` (the train_vit section); resumable from ``checkpoint``
    (per epoch), which is deleted once the outputs are written, so a code edit never resumes old weights."""
    spec = data.get_spec(dataset)
    set_determinism(p["seed"])
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # the full preset on a GPU

    x_all, y_all = data.load_split(spec, data_root, train=True)
    x_test, y_test = data.load_split(spec, data_root, train=False)
    tr_idx, va_idx = data.train_val_split(len(x_all), p["val_size"], p["seed"])  # train_classifier's split
    tr_idx = tr_idx[: p["train_limit"]] if p["train_limit"] else tr_idx
    lim = p["eval_limit"] or None
    mean = round(x_all[tr_idx].float().div(255).mean().item(), 6)
    std = round(x_all[tr_idx].float().div(255).std().item(), 6)
    contiguous = lambda t: t.contiguous()  # noqa: E731  (to_input returns channels_last, the ResNet's layout)
    splits = {
        "train": (contiguous(to_input(x_all[tr_idx], mean, std)), y_all[tr_idx]),
        "val": (contiguous(to_input(x_all[va_idx][:lim], mean, std)), y_all[va_idx][:lim]),
        "test": (contiguous(to_input(x_test[:lim], mean, std)), y_test[:lim]),
    }

    model = build(p, image_size=x_all.shape[-1], num_classes=len(spec.classes)).to(dev)
    n_params = count_parameters(model)
    print(f"train_vit: ViT dim {p['dim']}, depth {p['depth']}, heads {p['heads']}, patch {p['patch_size']} ({n_params:,} parameters), "
          f"batch {p['batch_size']}, {dev}, torch threads={torch.get_num_threads()}", file=sys.stderr)
    t0, c0 = time.perf_counter(), time.process_time()
    rows = train_vit(model, p, splits["train"], splits["val"], len(spec.classes), fill=-mean / std, dev=dev, checkpoint=checkpoint)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    print(f"trained in {seconds:.1f} s wall, {cpu_seconds:.1f} s CPU ({len(tr_idx) * p['epochs'] / seconds:.0f} img/s)", file=sys.stderr)

    metrics: dict[str, Any] = {"dataset": dataset, "model": f"vit-d{p['dim']}-l{p['depth']}-p{p['patch_size']}", "parameters": n_params}
    splits["train"] = (splits["train"][0][:lim], splits["train"][1][:lim])  # scored on a seeded subset
    logits = {split: predict(model, x.to(dev)).cpu() for split, (x, _) in splits.items()}
    for split, (_, y) in splits.items():
        loss, m = scores(logits[split], y, len(spec.classes))
        metrics[split] = {**m, "loss": round(loss, 6), "n": len(y)}
    test_pred = logits["test"].argmax(1)

    config = {**model.config.to_dict(), "dataset": dataset, "input_mean": mean, "input_std": std, "feature_dim": model.feature_dim}
    io.save_model(model.cpu(), config, out / "model.safetensors", out / "config.json")
    io.write_tsv(out / "curves.tsv", rows)
    with io.atomic_path(out / "predictions.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, y_true=splits["test"][1].numpy().astype(np.uint8), y_pred=test_pred.numpy().astype(np.uint8))
    io.write_json(out / "metrics.json", metrics)  # last: its presence means the run finished
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    print(f"test accuracy {metrics['test']['accuracy']:.4f}, macro-F1 {metrics['test']['f1_macro']:.4f}", file=sys.stderr)
    return metrics
