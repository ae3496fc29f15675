"""Stage evaluate_grounding: mAP@0.5 and mAP@[.5:.95] per query kind, held-out (digit, colour) pairs and
absent-query false positives of each backbone's detector on the test scenes; detections.png.

Writes <out>/metrics.json and detections.png (grounding.evaluate.figure_queries, one scene each, a row per backbone).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.grounding.backbones import BACKBONES
from genpipe.grounding.evaluate import run
from genpipe.pipeline.params import load_params
from genpipe.scenes.dataset import ScenesError


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", required=True, type=Path, help="the test scenes file of make_scenes")
    ap.add_argument("--runs", required=True, type=Path, help="train_grounding's output directory (one subdirectory per backbone)")
    ap.add_argument("--clip", required=True, type=Path, help="the train_clip run whose text tower train_grounding read")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p, scenes = load_params("evaluate_grounding", args.params), load_params("make_scenes", args.params)
    try:
        m = run(args.scenes, {b: args.runs / b for b in BACKBONES}, args.clip, args.out, p, scenes["held_out"])
    except (ScenesError, FileNotFoundError, KeyError, ValueError) as exc:  # a backbone of another shape: ConfigMismatchError
        raise SystemExit(f"evaluate_grounding: {exc}")
    b = m["backbones"]
    print("evaluate_grounding: digit+colour mAP@0.5 " + ", ".join(f"{k} {v['digit_colour']['map_50']:.3f}" for k, v in b.items())
          + "; absent FP " + ", ".join(f"{k} {v['absent']['false_positive_share']:.3f}" for k, v in b.items()))


if __name__ == "__main__":
    main()
