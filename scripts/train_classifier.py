"""Stage train_classifier: train the ResNet-(6n+2) classifier of one dataset and evaluate it.

Writes <out>/model.safetensors + config.json, curves.tsv (per epoch), metrics.json (accuracy,
micro-F1, macro-F1 on train, val and test) and predictions.npz (test labels and predictions).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.classify import classifier
from genpipe.data import datasets as data
from genpipe.pipeline.params import load_params


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, choices=sorted(data.DATASETS))
    ap.add_argument("--data", required=True, type=Path, help="dataset root written by the download stage")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p = load_params(f"train_classifier.{args.dataset}", args.params)  # validate before any work
    classifier.run(args.dataset, args.data, args.out, p, name=f"train_classifier[{args.dataset}]")


if __name__ == "__main__":
    main()
