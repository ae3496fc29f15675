"""One classifier run: load verified data, split, train ResNet-(6n+2), evaluate, write artifacts.

Shared by the ``train_classifier`` stage (one run per dataset) and the normalisation study
(``train_norm_study``, ``train_small_batch``), so every run writes the same files:
model.safetensors + config.json, curves.tsv, predictions.npz and metrics.json (written last).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genpipe.data import datasets as data
from genpipe.pipeline import io
from genpipe.models.resnet import ResNet, ResNetConfig
from genpipe.classify.train import TrainConfig, predict, scores, to_input, train_classifier
from genpipe.pipeline.determinism import set_determinism

TRAIN_KEYS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "seed")


def load_model(run_dir: Path) -> tuple[ResNet, dict[str, Any]]:
    """The trained model of a run directory (eval mode) and its config."""
    state, config = io.load_state(run_dir / "model.safetensors", run_dir / "config.json")
    keys = ResNetConfig.__dataclass_fields__
    model = ResNet(ResNetConfig(**{k: v for k, v in config.items() if k in keys}))
    model.load_state_dict(state)
    return model.eval(), config


def run(dataset: str, data_root: Path, out: Path, p: dict[str, Any], name: str) -> dict[str, Any]:
    """Train and evaluate one classifier with params ``p`` (a train_classifier-shaped section)."""
    spec = data.get_spec(dataset)
    set_determinism(p["seed"])
    print(f"{name}: ResNet-{6 * p['depth_n'] + 2}, norm={p['norm']}, batch={p['batch_size']}, torch threads={torch.get_num_threads()}", file=sys.stderr)

    x_all, y_all = data.load_split(spec, data_root, train=True)
    x_test, y_test = data.load_split(spec, data_root, train=False)
    tr_idx, va_idx = data.train_val_split(len(x_all), p["val_size"], p["seed"])
    tr_idx = tr_idx[: p["train_limit"]] if p["train_limit"] else tr_idx
    lim = p["eval_limit"] or None
    mean = round(x_all[tr_idx].float().div(255).mean().item(), 6)
    std = round(x_all[tr_idx].float().div(255).std().item(), 6)
    splits = {
        "train": (to_input(x_all[tr_idx], mean, std), y_all[tr_idx]),
        "val": (to_input(x_all[va_idx][:lim], mean, std), y_all[va_idx][:lim]),
        "test": (to_input(x_test[:lim], mean, std), y_test[:lim]),
    }

    net_cfg = ResNetConfig(depth_n=p["depth_n"], width=p["width"], norm=p["norm"], gn_groups=p["gn_groups"], num_classes=len(spec.classes))
    model = ResNet(net_cfg).to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    rows = train_classifier(model, TrainConfig(**{k: p[k] for k in TRAIN_KEYS}), splits["train"], splits["val"], len(spec.classes))
    seconds = time.perf_counter() - t0
    print(f"trained in {seconds:.1f} s ({len(tr_idx) * p['epochs'] / seconds:.0f} img/s)", file=sys.stderr)

    metrics: dict[str, Any] = {"dataset": dataset, "model": f"resnet{net_cfg.depth}-{p['norm']}"}
    splits["train"] = (splits["train"][0][:lim], splits["train"][1][:lim])  # scored on a seeded subset
    logits = {split: predict(model, x) for split, (x, _) in splits.items()}
    for split, (_, y) in splits.items():
        loss, m = scores(logits[split], y, len(spec.classes))
        metrics[split] = {**m, "loss": round(loss, 6), "n": len(y)}
    test_pred = logits["test"].argmax(1)

    config = {**net_cfg.to_dict(), "dataset": dataset, "input_mean": mean, "input_std": std, "feature_dim": model.feature_dim}
    io.save_model(model, config, out / "model.safetensors", out / "config.json")
    io.write_tsv(out / "curves.tsv", rows)
    with io.atomic_path(out / "predictions.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, y_true=splits["test"][1].numpy().astype(np.uint8), y_pred=test_pred.numpy().astype(np.uint8))
    io.write_json(out / "metrics.json", metrics)  # last: its presence means the run finished
    print(f"test accuracy {metrics['test']['accuracy']:.4f}, macro-F1 {metrics['test']['f1_macro']:.4f}", file=sys.stderr)
    return metrics
