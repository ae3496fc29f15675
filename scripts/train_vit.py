"""Stage train_vit: a Vision Transformer trained supervised on Fashion-MNIST, scored like train_classifier.

Writes <out>/model.safetensors + config.json, curves.tsv (per epoch), metrics.json (accuracy,
micro-F1, macro-F1 on train, val and test) and predictions.npz (test labels and predictions).
The training state is saved after each epoch in --checkpoint (default checkpoints/train_vit/state.pt,
not an output): a killed run started again continues from it; it is deleted when the run finishes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.classify import vit_stage
from genpipe.pipeline.checkpoint import CheckpointError
from genpipe.pipeline.params import load_params


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="Fashion-MNIST root written by the download stage")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    ap.add_argument("--checkpoint", default=Path("checkpoints/train_vit/state.pt"), type=Path)
    args = ap.parse_args(argv)
    p = load_params("train_vit", args.params)  # validate before any work
    try:
        vit_stage.run(args.data, args.out, p, checkpoint=args.checkpoint)
    except CheckpointError as exc:  # a refused or unwritable checkpoint: one line, not a traceback
        raise SystemExit(f"train_vit: {exc}")


if __name__ == "__main__":
    main()
