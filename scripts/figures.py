"""Stage figures: training curves, test confusion matrix and real samples per class of one dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from genpipe.data import datasets as data
from genpipe.classify.metrics import confusion_matrix
from genpipe.pipeline.params import load_params
from genpipe.pipeline.plots import plot_class_grid, plot_confusion, plot_curves, save_figure


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True, choices=sorted(data.DATASETS))
    ap.add_argument("--data", required=True, type=Path, help="dataset root written by the download stage")
    ap.add_argument("--classifier", required=True, type=Path, help="train_classifier output directory")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)

    p = load_params("figures", args.params)
    spec = data.get_spec(args.dataset)
    name = args.dataset.replace("_", "-")

    curves = pd.read_csv(args.classifier / "curves.tsv", sep="\t")
    save_figure(plot_curves(curves, f"ResNet classifier on {name}"), args.out / "curves.png")

    pred = np.load(args.classifier / "predictions.npz")
    cm = confusion_matrix(torch.from_numpy(pred["y_pred"]).long(), torch.from_numpy(pred["y_true"]).long(), len(spec.classes))
    acc = np.trace(cm.numpy()) / cm.sum().item()
    save_figure(plot_confusion(cm.numpy(), spec.classes, f"{name} test confusion matrix (accuracy {100 * acc:.2f} %)"), args.out / "confusion.png")

    x, y = data.load_split(spec, args.data, train=False)
    g = torch.Generator().manual_seed(p["seed"])
    k = p["samples_per_class"]
    grid = np.stack([x[(y == c).nonzero().squeeze(1)[torch.randperm(int((y == c).sum()), generator=g)[:k]]].numpy() for c in range(len(spec.classes))])
    save_figure(plot_class_grid(grid, spec.classes, f"{name}: {k} random test images per class"), args.out / "samples.png")


if __name__ == "__main__":
    main()
