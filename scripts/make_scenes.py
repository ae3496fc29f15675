"""Stage make_scenes: colour scenes of real MNIST digits with full ground truth (issue 13).

Writes <out>/{train,val,test,test_shifted}.npz (the scenes file format of
genpipe.scenes.dataset), scenes.png (a grid of scenes with their captions) and metrics.json
(counts per number of objects, colour, digit and (digit, colour) pair; sha256 of each file).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from genpipe.data.datasets import DataError
from genpipe.pipeline.params import load_params
from genpipe.scenes.captions import TemplateError
from genpipe.scenes.stages import make_scenes_stage


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="MNIST root written by the download stage")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    params = load_params("make_scenes", args.params)
    start = time.perf_counter()
    try:
        m = make_scenes_stage(args.data, args.out, params)
    except (DataError, TemplateError, ValueError) as exc:
        sys.exit(f"make_scenes: {exc}")
    counts = ", ".join(f"{k} {v['n_scenes']} ({v['held_out_objects']} held-out objects)" for k, v in m["splits"].items())
    print(f"make_scenes: {counts} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
