"""Stage evaluate_samples: score one generator's samples.npz (any generator of the project).

FID and KID against the test split in the dataset classifier's feature space, the real-vs-real
floor for scale, and for conditional samples the generation accuracy (share the classifier
labels as the requested class), overall and per class. Writes <out>/metrics.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.scoring.evaluation import evaluate_samples
from genpipe.pipeline.params import load_params


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", required=True, type=Path, help="samples.npz (uint8 images, labels, dataset)")
    ap.add_argument("--classifier", required=True, type=Path, help="train_classifier run directory of the dataset")
    ap.add_argument("--reference", required=True, type=Path, help="reference_stats directory of the dataset")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    m = evaluate_samples(args.samples, args.classifier, args.reference, args.out, load_params("evaluate_samples", args.params))
    acc = "" if m["generation_accuracy"] is None else f", generation accuracy {100 * m['generation_accuracy']:.2f} %"
    print(f"{args.samples}: n={m['n']}, FID {m['fid']:.3f} (floor {m['floor']['fid']:.3f}), KID {m['kid_mean']:.5f}{acc}")


if __name__ == "__main__":
    main()
