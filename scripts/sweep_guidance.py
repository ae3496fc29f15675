"""Stage sweep_guidance: sample the trained DDPM with one sampler at each classifier-free guidance scale.

Writes <out>/samples/guidance_<w>.npz (conditional, balanced labels; the format of evaluate_samples,
the same seed at every scale), grid.png (the same seeds across the scales) and metrics.json (time
per scale). The sampler's steps and options, the batch size and the precision are sample_ddpm's;
the scales, sample counts and seed are sweep_guidance's. evaluate_guidance scores the sets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.ddpm.diffusion import SAMPLERS
from genpipe.ddpm.sweep import sweep_stage
from genpipe.pipeline.params import load_params


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sampler", required=True, choices=SAMPLERS)
    ap.add_argument("--model", required=True, type=Path, help="train_ddpm run directory")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    sweep = load_params("sweep_guidance", args.params)
    if args.sampler not in sweep["samplers"]:
        raise SystemExit(f"sweep_guidance.samplers has no {args.sampler!r} (has {', '.join(sweep['samplers'])})")
    sweep_stage(args.model, args.sampler, args.out, sweep, load_params("sample_ddpm", args.params))


if __name__ == "__main__":
    main()
