"""Stage reference_stats: real-image features of one dataset for scoring samples, in two spaces.

The spaces: the dataset classifier's features and the DINO ViT trained on the dataset without labels.
Writes <out>/features.safetensors (test split and training-subset features in both spaces; its one
metadata key, "config", holds the dataset, the sha256 of the classifier, the DINO ViT and the second
judge, and the feature dimensions as sorted JSON, so the bytes do not change between runs) and
metrics.json (the real-vs-real floors: FID/KID of training images vs the test split in each space;
both judges' accuracy on the test split; the DINO features' weighted k-NN accuracy).
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
    ap.add_argument("--dino", required=True, type=Path, help="train_dino run directory of the dataset")
    ap.add_argument("--judge", required=True, type=Path, help="run directory of the dataset's second judge (genpipe.scoring.spaces.JUDGES)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p = load_params("evaluate_samples", args.params)
    ev = load_params("evaluate_dino", args.params)
    m = reference_stats(args.dataset, args.data, args.classifier, args.dino, args.judge, args.out, p,
                        {"k": ev["knn_k"], "temperature": ev["knn_temperature"]})
    j = m["judges"]
    print(f"{args.dataset}: real-vs-real floor FID {m['floor']['fid']:.3f} (DINO features {m['dino']['floor']['fid']:.3f}); "
          f"test accuracy of the classifier {100 * j['classifier_test_accuracy']:.2f} %, of the {j['judge']} "
          f"{100 * j['judge_test_accuracy']:.2f} %, of a k-NN on the DINO features {100 * m['dino']['knn_test_accuracy']:.2f} %")


if __name__ == "__main__":
    main()
