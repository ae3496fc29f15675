"""Stage evaluate_scene_parser: score the scene parser on test, test_shifted, held-out pairs, empty images.

Writes <out>/metrics.json (blocks test, test_shifted, held_out, blank, noise), per_class.tsv
(accuracy per digit and per colour), confusion.png and boxes.png. The held-out (digit, colour)
pairs are params make_scenes.held_out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genpipe.pipeline.io import ConfigMismatchError
from genpipe.pipeline.params import load_params
from genpipe.scenes.compose import held_out_pairs
from genpipe.scenes.dataset import ScenesError
from genpipe.scenes.parser_stages import evaluate_stage


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", required=True, type=Path, help="directory written by make_scenes")
    ap.add_argument("--model", required=True, type=Path, help="directory written by train_scene_parser")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    params = load_params("evaluate_scene_parser", args.params)
    held_out = held_out_pairs(load_params("make_scenes.held_out", args.params))
    try:
        m = evaluate_stage(args.scenes, args.model, args.out, params, held_out)
    except (ScenesError, ConfigMismatchError, FileNotFoundError) as exc:
        sys.exit(f"evaluate_scene_parser: {exc}")
    print("evaluate_scene_parser: " + ", ".join(f"{k} object accuracy {m[k]['object_accuracy']:.4f}" for k in ("test", "test_shifted", "held_out"))
          + f", noise false-positive rate {m['noise']['false_positive_rate']:.3f}, {m['seconds']} s")


if __name__ == "__main__":
    main()
