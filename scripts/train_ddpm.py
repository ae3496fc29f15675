"""Stage train_ddpm: train the class-conditional DDPM (our U-Net, ε-prediction) on MNIST.

Writes <out>/model.safetensors (EMA weights) + config.json (U-Net and noise schedule), curves.tsv
(step, epoch, loss) and metrics.json. The resumable training state is kept in --checkpoint
(default checkpoints/train_ddpm/state.pt): a killed run started again continues from it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genpipe.ddpm.diffusion import train_stage
from genpipe.pipeline.checkpoint import CheckpointError
from genpipe.pipeline.params import load_params


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="MNIST root written by the download stage")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--checkpoint", default=Path("checkpoints/train_ddpm/state.pt"), type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    try:
        train_stage(args.data, args.out, args.checkpoint, load_params("train_ddpm", args.params))
    except CheckpointError as exc:  # a refused or unwritable checkpoint: one line, not a traceback
        sys.exit(f"train_ddpm: {exc}")


if __name__ == "__main__":
    main()
