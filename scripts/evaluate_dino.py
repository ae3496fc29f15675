"""Stage evaluate_dino: k-NN and linear-probe accuracy of DINO's features on Fashion-MNIST test beside
raw pixels, a random and the supervised ViT; attention-vs-mask Jaccard on the test scenes.

Writes <out>/metrics.json and attention.png (per head, over scenes with several objects).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.dino.evaluate_stage import run
from genpipe.pipeline.params import load_params
from genpipe.scenes.dataset import ScenesError


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="Fashion-MNIST root written by the download stage")
    ap.add_argument("--scenes", required=True, type=Path, help="make_scenes output directory")
    ap.add_argument("--dino", required=True, type=Path, help="train_dino's output directory (holding fashion_mnist/ and scenes/)")
    ap.add_argument("--vit", required=True, type=Path, help="train_vit's output directory")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p, dino = load_params("evaluate_dino", args.params), load_params("dino", args.params)  # dino: the runs' seed
    try:
        m = run(args.data, args.scenes, {r: args.dino / r for r in ("fashion_mnist", "scenes")}, args.vit, args.out, p, dino["seed"])
    except (ScenesError, FileNotFoundError, ValueError) as exc:  # a checkpoint of another shape: ConfigMismatchError
        raise SystemExit(f"evaluate_dino: {exc}")
    f, a = m["fashion_mnist"], m["attention"]
    print("evaluate_dino: k-NN " + ", ".join(f"{k} {f[k]['knn']:.4f}" for k in ("raw_pixels", "random_vit", "supervised_vit", "dino"))
          + f"; attention Jaccard (best head) DINO {a['dino_scenes']['best_head_jaccard']:.3f}, random {a['random_vit']['best_head_jaccard']:.3f}")


if __name__ == "__main__":
    main()
