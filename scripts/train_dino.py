"""Stage train_dino: DINO self-distillation (student and EMA-teacher ViTs) on unlabelled images, one run.

Runs (params.yaml dino.runs): fashion_mnist and mnist (train_classifier's training split, no labels)
and scenes (make_scenes' train scenes). Writes <out>/model.safetensors + config.json (the teacher's
backbone), curves.tsv and metrics.json (written last). The training state is saved every
dino.checkpoint_every steps in --checkpoint (default checkpoints/train_dino/<run>.pt, not an output):
a killed run started again continues from it, byte for byte; it is deleted when the run finishes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.dino.stages import RUNS, train
from genpipe.pipeline.checkpoint import CheckpointError
from genpipe.pipeline.params import load_params
from genpipe.scenes.dataset import ScenesError


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, choices=RUNS)
    ap.add_argument("--source", required=True, type=Path, help="the IDX training images file (fashion_mnist, mnist) or the train scenes file (scenes)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    ap.add_argument("--checkpoint", type=Path, default=None)
    args = ap.parse_args(argv)
    p = load_params("dino", args.params)  # validate before any work
    checkpoint = args.checkpoint or Path("checkpoints/train_dino") / f"{args.run}.pt"
    try:
        m = train(args.run, args.source, args.out, p, checkpoint)
    except (CheckpointError, ScenesError, KeyError, ValueError) as exc:
        raise SystemExit(f"train_dino {args.run}: {exc}")
    print(f"train_dino {args.run}: {m['steps']} steps in {m['seconds']:.0f} s ({m['images_per_second']:.0f} img/s), "
          f"loss {m['final_loss']:.3f}, teacher entropy {m['teacher_entropy']:.2f} of {m['log_prototypes']:.2f}"
          + (" — COLLAPSED" if m["collapsed"] else ""))


if __name__ == "__main__":
    main()
