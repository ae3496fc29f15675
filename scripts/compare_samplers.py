"""Stage compare_samplers: the three DDPM samplers side by side.

Reads train_ddpm's curves, each sampler's timing (sample_ddpm) and scores (evaluate_samples) and
writes <out>/samplers.tsv, metrics.json (same-N FID and accuracy per sampler, FID ratio and
speed-up against the 1000-step sampler), quality_vs_nfe.png and loss.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.ddpm.stages import compare_stage


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, type=Path, help="train_ddpm run directory")
    ap.add_argument("--samples", required=True, type=Path, help="sample_ddpm directory (one folder per sampler)")
    ap.add_argument("--scores", required=True, type=Path, help="evaluate_samples directory")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    m = compare_stage(args.train, args.samples, args.scores, args.out)
    print(f"DPM-Solver++: FID {m['fid_ratio_to_ddpm']['dpmpp']:.2f} x the 1000-step FID, "
          f"{m['speedup_over_ddpm']['dpmpp']:.1f} x faster (N = {m['n_same']})")


if __name__ == "__main__":
    main()
