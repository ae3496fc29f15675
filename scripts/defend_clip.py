"""Stage defend_clip: three defenses of CLIP's zero-shot digit classifier, trained the same way from the plain run.

TeCoA (the image tower fine-tuned), a visual prompt (border pixels only) and LoRA (rank-r matrices on
the image tower's attention projections), each on PGD images of the one-object train scenes against the
frozen digit text embeddings (genpipe.robustness.clip_zero_shot). Writes <out>/tecoa/ and <out>/lora/
(open_clip directories: ``open_clip.create_model("local-dir:<out>/tecoa")`` loads them; lora/ also
holds its matrices), <out>/prompt/prompt.safetensors, curves.tsv and metrics.json (written last).
attack_clip scores them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genpipe.pipeline.io import ConfigMismatchError
from genpipe.pipeline.params import load_params
from genpipe.robustness.classifiers import AttackError
from genpipe.robustness.clip_stages import defend_stage
from genpipe.scenes.dataset import ScenesError


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", required=True, type=Path, help="train_clip run directory (the plain variant)")
    ap.add_argument("--scenes", required=True, type=Path, help="make_scenes output directory")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p = load_params("defend_clip", args.params)  # validate before any work
    templates = load_params("make_scenes", args.params)["templates"]
    try:
        m = defend_stage(args.clip, args.scenes, args.out, p, templates)
    except (AttackError, ConfigMismatchError, ScenesError, ValueError) as exc:
        sys.exit(f"defend_clip: {exc}")
    print("defend_clip: " + ", ".join(f"{d} {s['trainable_parameters']:,} parameters, adversarial train accuracy "
                                       f"{100 * s['final_adv_train_accuracy']:.1f} %" for d, s in m["defenses"].items()))


if __name__ == "__main__":
    main()
