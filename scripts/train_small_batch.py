"""Stage train_small_batch: one run of the small-batch sweep (norm x batch size) on Fashion-MNIST.

Every batch size sees the same images (norm_study.small_batch.train_limit x epochs); the learning
rate is scaled linearly with the batch size from lr_at_64.
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
    ap.add_argument("--batch-size", required=True, type=int)
    ap.add_argument("--data", required=True, type=Path, help="Fashion-MNIST root written by the download stage")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    training = load_params("norm_study.training", args.params)
    sweep = load_params("norm_study.small_batch", args.params)
    p = {
        **training,
        "norm": args.norm,
        "batch_size": args.batch_size,
        "lr": sweep["lr_at_64"] * args.batch_size / 64,
        "train_limit": sweep["train_limit"],
        "epochs": sweep["epochs"],
        "seed": sweep["seed"],
    }
    classifier.run("fashion_mnist", args.data, args.out, p, name=f"train_small_batch[{args.norm}-{args.batch_size}]")


if __name__ == "__main__":
    main()
