"""Stage train_grounding: a small Grounding DINO head on a frozen scene ViT and CLIP's frozen text tower, one run per backbone.

Backbones (params.yaml grounding.backbones; the ablation): dino (train_dino/scenes' teacher), random (a
ViT of its shape at DINO's initialisation), supervised (that initialisation trained here on which
(digit, colour) pairs each train scene holds). Same head, same queries, same budget for each.
Writes <out>/model.safetensors + config.json, backbone.safetensors + backbone.json, curves.tsv and metrics.json (last).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.grounding.backbones import BACKBONES
from genpipe.grounding.train import run
from genpipe.pipeline.params import load_params
from genpipe.scenes.dataset import ScenesError


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", required=True, choices=BACKBONES)
    ap.add_argument("--scenes", required=True, type=Path, help="the train scenes file of make_scenes")
    ap.add_argument("--dino", required=True, type=Path, help="train_dino/scenes: the DINO backbone (its shape and config for the others)")
    ap.add_argument("--clip", required=True, type=Path, help="a train_clip run directory: its text tower")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p = load_params("grounding", args.params)  # validate before any work
    dino, scenes = load_params("dino", args.params), load_params("make_scenes", args.params)
    try:
        m = run(args.backbone, args.scenes, args.dino, args.clip, args.out, p, dino["seed"], scenes["held_out"])
    except (ScenesError, FileNotFoundError, KeyError, ValueError) as exc:  # a backbone of another shape: ConfigMismatchError
        raise SystemExit(f"train_grounding {args.backbone}: {exc}")
    print(f"train_grounding {args.backbone}: {m['steps']} steps in {m['train_seconds']:.0f} s ({m['pairs_per_second']:.0f} pairs/s), "
          f"loss {m['final_loss']:.3f}, GIoU loss {m['final_giou']:.3f}")


if __name__ == "__main__":
    main()
