"""Stage train_scene_parser: train the scene parser (an anchor-free detector) on the train scenes.

Writes <out>/model.safetensors + config.json (genpipe.scenes.parser.ParserConfig), curves.tsv
(epoch, step, train losses, val object/count accuracy) and metrics.json (val metrics, img/s,
seconds). Load the trained judge with genpipe.scenes.parser_stages.load_parser(<out>).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genpipe.pipeline.params import load_params
from genpipe.scenes.dataset import ScenesError
from genpipe.scenes.parser_stages import train_stage


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", required=True, type=Path, help="directory written by make_scenes")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    params = load_params("train_scene_parser", args.params)
    try:
        m = train_stage(args.scenes, args.out, params)
    except ScenesError as exc:
        sys.exit(f"train_scene_parser: {exc}")
    v = m["val"]
    print(f"train_scene_parser: val object accuracy {v['object_accuracy']:.4f}, mAP@0.5 {v['map_50']:.4f}, "
          f"{m['train_images_per_second']} img/s, {m['seconds']} s")


if __name__ == "__main__":
    main()
