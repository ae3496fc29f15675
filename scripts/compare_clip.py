"""Stage compare_clip: CLIP with and without hard negatives (and a pretrained model, if scored) side by side.

Writes <out>/table.tsv (every metric, all and held-out, with N), binding.png and metrics.json
(the targets checked, the binding gain and an observation computed from the numbers).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.clip.compare import compare_stage


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, type=Path, help="train_clip root (one directory per variant)")
    ap.add_argument("--evals", required=True, type=Path, help="evaluate_clip root (one directory per variant)")
    ap.add_argument("--pretrained", required=True, type=Path, help="evaluate_clip_pretrained output directory")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    m = compare_stage(args.train, args.evals, args.pretrained, args.out)
    print(f"compare_clip: {m['observation']}")


if __name__ == "__main__":
    main()
