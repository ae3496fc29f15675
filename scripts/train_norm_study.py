"""Stage train_norm_study: one Fashion-MNIST classifier run of the normalisation study (norm x seed).

Same outputs as train_classifier; the architecture and training come from norm_study.training.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.classify import classifier
from genpipe.models.norms import NORMS
from genpipe.pipeline.params import load_params


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--norm", required=True, choices=NORMS)
    ap.add_argument("--seed", required=True, type=int)
    ap.add_argument("--data", required=True, type=Path, help="Fashion-MNIST root written by the download stage")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p = {**load_params("norm_study.training", args.params), "norm": args.norm, "seed": args.seed}
    classifier.run("fashion_mnist", args.data, args.out, p, name=f"train_norm_study[{args.norm}-{args.seed}]")


if __name__ == "__main__":
    main()
