"""Stage evaluate_clip_pretrained: the CLIP benchmark for an open_clip checkpoint named in params.

evaluate_clip.pretrained null (the default): writes <out>/metrics.json saying so. Set to
{model_name, path}: ``open_clip.create_model(model_name, pretrained=path)`` (a built-in or
registered architecture and its checkpoint, or ``model_name: local-dir:<dir>`` with path null)
is scored on the test scenes, resized to its input size, exactly as evaluate_clip scores ours.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genpipe.clip.evaluate import pretrained_stage
from genpipe.pipeline.params import load_params
from genpipe.scenes.compose import held_out_pairs
from genpipe.scenes.dataset import ScenesError


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", required=True, type=Path, help="make_scenes output directory")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p = load_params("evaluate_clip", args.params)
    scenes_p = load_params("make_scenes", args.params)
    try:
        m = pretrained_stage(p["pretrained"], args.scenes, args.out, p, scenes_p["templates"], held_out_pairs(scenes_p["held_out"]))
    except (FileNotFoundError, RuntimeError, ScenesError, ValueError) as exc:
        sys.exit(f"evaluate_clip_pretrained: {exc}")
    if not m["configured"]:
        print("evaluate_clip_pretrained: evaluate_clip.pretrained is null, nothing to score")
    else:
        a = m["all"]
        print(f"evaluate_clip_pretrained {m['model']}: digit {a['digit_accuracy']:.3f}, colour {a['colour_accuracy']:.3f}, "
              f"binding colour {a['binding_colour']:.3f} / relation {a['binding_relation']:.3f}")


if __name__ == "__main__":
    main()
