"""Stage evaluate_samples: score one generator's samples.npz (any generator of the project).

Against the test split, in two feature spaces (the dataset classifier's and the DINO ViT's): FID/KID
with the real-vs-real floor for scale, and improved precision / recall and density / coverage with
their real-vs-real row. For conditional samples the generation accuracy (the share labelled as the
requested class) by two judges, the classifier and another independently trained network
(genpipe.scoring.spaces.JUDGES), overall and per class, and how often the two agree. Writes <out>/metrics.json.
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
    ap.add_argument("--dino", required=True, type=Path, help="train_dino run directory of the dataset")
    ap.add_argument("--judge", required=True, type=Path, help="run directory of the dataset's second judge (genpipe.scoring.spaces.JUDGES)")
    ap.add_argument("--reference", required=True, type=Path, help="reference_stats directory of the dataset")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    m = evaluate_samples(args.samples, args.classifier, args.dino, args.judge, args.reference, args.out, load_params("evaluate_samples", args.params))
    acc = "" if m["generation_accuracy"] is None else (
        f", generation accuracy {100 * m['generation_accuracy']:.2f} % (second judge {100 * m['generation_accuracy_judge']:.2f} %)")
    pr = m["prdc"]["dino"]
    print(f"{args.samples}: n={m['n']}, FID {m['fid']:.3f} (floor {m['floor']['fid']:.3f}), KID {m['kid_mean']:.5f}, "
          f"DINO FD {m['dino']['fid']:.3f} (floor {m['dino']['floor']['fid']:.3f}), DINO precision {pr['precision']:.3f} recall {pr['recall']:.3f}{acc}")


if __name__ == "__main__":
    main()
