"""Stage reference_stats: real-image features of one dataset for FID/KID, from its classifier.

Writes <out>/features.safetensors (test split and training-subset features; its one metadata key,
"config", holds the dataset, the classifier's sha256 and the feature dimension as sorted JSON, so the
bytes do not change between runs) and metrics.json (the real-vs-real floor: FID/KID of training
images vs the test split).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.data import datasets as data
from genpipe.scoring.evaluation import reference_stats
from genpipe.pipeline.params import load_params


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, choices=sorted(data.DATASETS))
    ap.add_argument("--data", required=True, type=Path, help="dataset root written by the download stage")
    ap.add_argument("--classifier", required=True, type=Path, help="train_classifier run directory of the dataset")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    m = reference_stats(args.dataset, args.data, args.classifier, args.out, load_params("evaluate_samples", args.params))
    print(f"{args.dataset}: real-vs-real floor FID {m['floor']['fid']:.3f}, KID {m['floor']['kid_mean']:.5f}")


if __name__ == "__main__":
    main()
