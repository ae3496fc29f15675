"""Stage train_classifier: train the ResNet-(6n+2) classifier of one dataset and evaluate it.

Writes <out>/model.safetensors + config.json, curves.tsv (per epoch), metrics.json (accuracy,
micro-F1, macro-F1 on train, val and test) and predictions.npz (test labels and predictions).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from genpipe import data, io
from genpipe.models.resnet import ResNet, ResNetConfig
from genpipe.params import load_params
from genpipe.train import TrainConfig, evaluate, predict, set_determinism, to_input, train_classifier


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, choices=sorted(data.DATASETS))
    ap.add_argument("--data", required=True, type=Path, help="dataset root written by the download stage")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)

    p = load_params(f"train_classifier.{args.dataset}", args.params)  # validate before any work
    spec = data.get_spec(args.dataset)
    set_determinism(p["seed"])
    print(f"train_classifier[{args.dataset}]: ResNet-{6 * p['depth_n'] + 2}, norm={p['norm']}, torch threads={torch.get_num_threads()}", file=sys.stderr)

    x_all, y_all = data.load_split(spec, args.data, train=True)
    x_test, y_test = data.load_split(spec, args.data, train=False)
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
    train_cfg = TrainConfig(**{k: p[k] for k in ("epochs", "batch_size", "lr", "momentum", "weight_decay", "seed")})
    t0 = time.perf_counter()
    rows = train_classifier(model, train_cfg, splits["train"], splits["val"], len(spec.classes))
    seconds = time.perf_counter() - t0
    n_seen = len(tr_idx) * p["epochs"]
    print(f"trained in {seconds:.1f} s ({n_seen / seconds:.0f} img/s)", file=sys.stderr)

    metrics: dict[str, object] = {"dataset": args.dataset, "model": f"resnet{net_cfg.depth}-{p['norm']}"}
    for split, (x, y) in splits.items():
        loss, m = evaluate(model, x, y, len(spec.classes))
        metrics[split] = {**m, "loss": round(loss, 6), "n": len(y)}
    test_pred = predict(model, splits["test"][0]).argmax(1)

    config = {**net_cfg.to_dict(), "dataset": args.dataset, "input_mean": mean, "input_std": std, "feature_dim": model.feature_dim}
    io.save_model(model, config, args.out / "model.safetensors", args.out / "config.json")
    io.write_tsv(args.out / "curves.tsv", rows)
    with io.atomic_path(args.out / "predictions.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, y_true=splits["test"][1].numpy().astype(np.uint8), y_pred=test_pred.numpy().astype(np.uint8))
    io.write_json(args.out / "metrics.json", metrics)  # last: its presence means the stage finished
    print(f"test accuracy {metrics['test']['accuracy']:.4f}, macro-F1 {metrics['test']['f1_macro']:.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
