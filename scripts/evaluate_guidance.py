"""Stage evaluate_guidance: score sweep_guidance's sets (every sampler, every guidance scale).

FID in the MNIST classifier's features and the Fréchet distance in the DINO ViT's, precision /
recall / density / coverage in both, and generation accuracy by both judges, per sampler and scale.
Writes <out>/guidance.tsv (a DVC plot), guidance.png (the trade-off figure) and metrics.json
(the scores, the best scale per score, and the observations the report prints, among them
what sample_ddpm's guidance scale is best for).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.pipeline.params import load_params
from genpipe.scoring.guidance import evaluate_guidance


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", required=True, type=Path, help="sweep_guidance results directory (one sub-directory per sampler)")
    ap.add_argument("--classifier", required=True, type=Path, help="train_classifier run directory (mnist)")
    ap.add_argument("--dino", required=True, type=Path, help="train_dino run directory (mnist)")
    ap.add_argument("--judge", required=True, type=Path, help="train_scene_parser run directory (MNIST's second judge)")
    ap.add_argument("--reference", required=True, type=Path, help="reference_stats directory (mnist)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    samplers = list(load_params("sweep_guidance", args.params)["samplers"])
    m = evaluate_guidance(args.sweep, samplers, args.classifier, args.dino, args.judge, args.reference, args.out,
                          load_params("evaluate_samples", args.params), load_params("sample_ddpm", args.params)["guidance_scale"])
    print("\n".join(m["observations"]))


if __name__ == "__main__":
    main()
