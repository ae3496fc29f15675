"""Stage report: results/report/report.md from every dataset's classifier metrics and figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.data.datasets import DATASETS
from genpipe.pipeline.io import write_text
from genpipe.pipeline.report import build_report


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--results", default=Path("results"), type=Path)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    write_text(args.out, build_report(args.results, list(DATASETS)))


if __name__ == "__main__":
    main()
