"""Stage aggregate_norm_study: mean ± std table, figures and observations of the normalisation study.

Writes <out>/table.csv (per norm and split), metrics.json (the same, for `dvc metrics diff`),
summary.md (table + observations for the report), accuracy.png, val_curves.png,
small_batch.png and bin_gates.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from genpipe.pipeline import io
from genpipe.classify.norm_study import (
    bin_gates,
    collect,
    markdown_table,
    observations,
    plot_bin_gates,
    plot_small_batch,
    plot_test_accuracy,
    plot_val_curves,
    summary,
)
from genpipe.pipeline.params import load_params
from genpipe.pipeline.plots import save_figure


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True, type=Path, help="train_norm_study results directory")
    ap.add_argument("--small-batch", required=True, type=Path, help="train_small_batch results directory")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    study = load_params("norm_study", args.params)
    norms, seeds, sb_cfg = study["norms"], study["seeds"], study["small_batch"]

    runs = collect(args.runs, [(n, s) for n in norms for s in seeds])
    summ = summary(runs, norms)
    sb = collect(args.small_batch, [(n, b) for n in sb_cfg["norms"] for b in sb_cfg["batch_sizes"]])
    gates = bin_gates([args.runs / f"bin-{s}" for s in seeds]) if "bin" in norms else pd.DataFrame()

    with io.atomic_path(args.out / "table.csv") as tmp:
        summ.to_csv(tmp, index=False)
    metrics = {
        "norm_study": {r.norm: {} for r in summ.itertuples()},
        "small_batch": {f"{r.norm}-{r.key}": round(float(r.accuracy), 6) for r in sb[sb["split"] == "test"].itertuples()},
    }
    for r in summ.itertuples():
        metrics["norm_study"][r.norm][r.split] = {"accuracy_mean": r.accuracy_mean, "accuracy_std": r.accuracy_std, "f1_macro_mean": r.f1_macro_mean}
    if not gates.empty:
        metrics["bin_gate_mean"] = round(float(gates["mean"].mean()), 6)
    io.write_json(args.out / "metrics.json", metrics)

    curves = {n: [pd.read_csv(args.runs / f"{n}-{s}" / "curves.tsv", sep="\t") for s in seeds] for n in norms}
    save_figure(plot_test_accuracy(summ), args.out / "accuracy.png")
    save_figure(plot_val_curves(curves), args.out / "val_curves.png")
    save_figure(plot_small_batch(sb), args.out / "small_batch.png")
    if not gates.empty:
        save_figure(plot_bin_gates(gates), args.out / "bin_gates.png")
    text = [markdown_table(summ, len(seeds)), ""] + [f"- {o}" for o in observations(summ, sb, gates)]
    io.write_text(args.out / "summary.md", "\n".join(text) + "\n")


if __name__ == "__main__":
    main()
