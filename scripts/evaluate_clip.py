"""Stage evaluate_clip: one trained CLIP on the test scenes' benchmark.

Writes <out>/metrics.json (image->text and text->image recall@1/5 among n_retrieval scenes,
zero-shot digit and colour accuracy on single-object scenes, colour and relation binding accuracy
on two-object scenes; each also on the held-out (digit, colour) pairs, with its N),
similarity.png (similarity matrix of a batch) and retrieval.png (text->image examples).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genpipe.clip import model as clip_model
from genpipe.clip.evaluate import Scorer, evaluate_stage
from genpipe.pipeline.io import ConfigMismatchError
from genpipe.pipeline.params import load_params
from genpipe.scenes.compose import held_out_pairs
from genpipe.scenes.dataset import ScenesError


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", required=True, help="train_clip variant (plain, hardneg)")
    ap.add_argument("--model", required=True, type=Path, help="train_clip run directory")
    ap.add_argument("--scenes", required=True, type=Path, help="make_scenes output directory")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p = load_params("evaluate_clip", args.params)
    scenes_p = load_params("make_scenes", args.params)
    try:
        model, cfg = clip_model.load(args.model)
        scorer = Scorer(model, context_length=cfg["text_cfg"]["context_length"], batch_size=p["batch_size"])
        m = evaluate_stage(scorer, args.variant, args.scenes, args.out, p, scenes_p["templates"], held_out_pairs(scenes_p["held_out"]),
                           {"checkpoint": str(args.model / clip_model.WEIGHTS_NAME)})
    except (ConfigMismatchError, ScenesError, ValueError) as exc:
        sys.exit(f"evaluate_clip: {exc}")
    a = m["all"]
    print(f"evaluate_clip {args.variant}: digit {a['digit_accuracy']:.3f}, colour {a['colour_accuracy']:.3f}, binding colour "
          f"{a['binding_colour']:.3f} / relation {a['binding_relation']:.3f}, t2i R@1 {a['t2i_r1']:.3f}")


if __name__ == "__main__":
    main()
