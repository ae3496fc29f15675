"""Stage download: fetch one dataset from verified sources into torchvision's layout.

<out>/<Folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, readable by
torchvision.datasets.MNIST / FashionMNIST(root=<out>, download=False).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genpipe.data import datasets as data


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, choices=sorted(data.DATASETS))
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    spec = data.get_spec(args.dataset)
    try:
        used = data.download(spec, args.out)
    except data.DataError as exc:
        sys.exit(f"download[{args.dataset}]: {exc}")
    for f, source in used.items():
        print(f"{spec.raw_dir(args.out) / f}: sha256 ok, from {source}", file=sys.stderr)


if __name__ == "__main__":
    main()
