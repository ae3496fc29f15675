"""Stage train_clip: open_clip's CLIP on (scene, caption) pairs, one variant (plain | hardneg).

Writes <out>/model.safetensors + open_clip_config.json (open_clip's local-dir format:
``open_clip.create_model("local-dir:<out>")`` loads it), curves.tsv (step, epoch, lr, train and
val loss, logit scale) and metrics.json. The hardneg variant adds NegCLIP hard negatives (colours
or digits of two objects swapped, the relation reversed) as extra text negatives.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genpipe.clip.train import train_stage
from genpipe.pipeline.params import load_params
from genpipe.scenes.captions import TemplateError
from genpipe.scenes.dataset import ScenesError


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", required=True, help="a key of train_clip.variants (plain, hardneg)")
    ap.add_argument("--scenes", required=True, type=Path, help="make_scenes output directory")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p = load_params("train_clip", args.params)
    if args.variant not in p["variants"]:
        sys.exit(f"train_clip: unknown variant {args.variant!r} (train_clip.variants: {', '.join(p['variants'])})")
    try:
        m = train_stage(args.variant, args.scenes, args.out, p, load_params("make_scenes", args.params)["templates"])
    except (ScenesError, TemplateError, ValueError) as exc:
        sys.exit(f"train_clip: {exc}")
    print(f"train_clip {args.variant}: {m['steps']} steps in {m['seconds']:.0f} s ({m['images_per_second']:.0f} img/s), "
          f"val loss {m['final_val_loss']:.3f}")


if __name__ == "__main__":
    main()
