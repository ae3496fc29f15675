"""Stage sample_ddpm: sample the trained DDPM with one sampler (ddpm | ddim | dpmpp).

Writes <out>/samples.npz (conditional, balanced labels, classifier-free guidance),
unconditional.npz, grid.png (one row per digit), grid_unconditional.png, trajectory.png
(x_t from noise to x_0) and metrics.json (steps, network evaluations, wall time).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.ddpm.stages import sample_stage
from genpipe.ddpm.diffusion import SAMPLERS
from genpipe.pipeline.params import load_params


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sampler", required=True, choices=SAMPLERS)
    ap.add_argument("--model", required=True, type=Path, help="train_ddpm run directory")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    sample_stage(args.model, args.sampler, args.out, load_params("sample_ddpm", args.params))


if __name__ == "__main__":
    main()
