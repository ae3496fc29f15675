"""Stage train_vit: a Vision Transformer trained supervised on Fashion-MNIST, scored like train_classifier.

Writes <out>/model.safetensors + config.json, curves.tsv (per epoch), metrics.json (accuracy,
micro-F1, macro-F1 on train, val and test) and predictions.npz (test labels and predictions).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.classify import vit_stage
from genpipe.pipeline.params import load_params


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="Fashion-MNIST root written by the download stage")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p = load_params("train_vit", args.params)  # validate before any work
    vit_stage.run(args.data, args.out, p)


if __name__ == "__main__":
    main()
