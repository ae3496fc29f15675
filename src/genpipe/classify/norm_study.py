"""Aggregation of the normalisation study: tables, figures and the observations for the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.torch import load_file

from genpipe.pipeline.io import read_json
from genpipe.pipeline.plots import plt

SPLITS = ("train", "val", "test")
NAMES = {"bn": "BatchNorm", "in": "InstanceNorm", "bin": "Batch-Instance", "ln": "LayerNorm", "gn": "GroupNorm"}


def collect(runs: Path, instances: list[tuple[str, Any]]) -> pd.DataFrame:
    """One row per (instance, split) from ``runs/<a>-<b>/metrics.json``."""
    rows = []
    for a, b in instances:
        m = read_json(runs / f"{a}-{b}" / "metrics.json")
        rows += [{"norm": a, "key": b, "split": s, **{k: m[s][k] for k in ("accuracy", "f1_micro", "f1_macro")}} for s in SPLITS]
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame, norms: list[str]) -> pd.DataFrame:
    """Mean and std over seeds per norm and split (columns accuracy_mean, accuracy_std, ...)."""
    g = df.groupby(["norm", "split"])[["accuracy", "f1_micro", "f1_macro"]].agg(["mean", "std"])
    g.columns = [f"{m}_{s}" for m, s in g.columns]
    g = g.fillna(0.0).round(6).reset_index()
    g["norm"] = pd.Categorical(g["norm"], norms, ordered=True)
    g["split"] = pd.Categorical(g["split"], SPLITS, ordered=True)
    return g.sort_values(["norm", "split"]).reset_index(drop=True)


def markdown_table(summ: pd.DataFrame, n_seeds: int) -> str:
    lines = [
        f"| norm | train accuracy | val accuracy | test accuracy | test macro-F1 |",
        "|---|---|---|---|---|",
    ]
    for norm, g in summ.groupby("norm", observed=True):
        cell = {r.split: r for r in g.itertuples()}
        fmt = lambda r, m: f"{100 * getattr(r, m + '_mean'):.2f} ± {100 * getattr(r, m + '_std'):.2f}"  # noqa: E731
        lines.append(f"| {NAMES[norm]} (`{norm}`) | {fmt(cell['train'], 'accuracy')} | {fmt(cell['val'], 'accuracy')} "
                     f"| {fmt(cell['test'], 'accuracy')} | {fmt(cell['test'], 'f1_macro')} |")
    return "\n".join(lines) + f"\n\nMean ± std over {n_seeds} seed(s), in %."


def _network_order(name: str) -> tuple:
    """stem first, then stages.<i>.<j>.(norm1, norm2, shortcut) by number (safetensors sorts keys)."""
    parts = name.split(".")
    return (parts[0] != "stem",) + tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts[1:])


def bin_gates(run_dirs: list[Path]) -> pd.DataFrame:
    """BIN gate rho per layer (network order) and run: mean, min and max over channels."""
    rows = []
    for d in run_dirs:
        state = load_file(str(d / "model.safetensors"))
        names = sorted((k for k in state if k.endswith(".rho")), key=_network_order)
        for i, (name, rho) in enumerate((k, state[k]) for k in names):
            rows.append({"run": d.name, "layer": i, "name": name[: -len(".rho")], "mean": rho.mean().item(), "min": rho.min().item(), "max": rho.max().item()})
    return pd.DataFrame(rows)


def plot_test_accuracy(summ: pd.DataFrame) -> plt.Figure:
    test = summ[summ["split"] == "test"]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    x = np.arange(len(test))
    ax.bar(x, 100 * test["accuracy_mean"], yerr=100 * test["accuracy_std"], capsize=5, color="tab:blue", alpha=0.8)
    ax.set_xticks(x, [NAMES[n] for n in test["norm"]], rotation=15)
    lo = 100 * (test["accuracy_mean"] - test["accuracy_std"]).min()
    ax.set(ylabel="test accuracy (%)", ylim=(max(0, lo - 3), 100), title="Fashion-MNIST test accuracy per normalisation (mean ± std)")
    for xi, m in zip(x, test["accuracy_mean"]):
        ax.text(xi, 100 * m + 0.3, f"{100 * m:.2f}", ha="center", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_val_curves(curves: dict[str, list[pd.DataFrame]]) -> plt.Figure:
    """Validation accuracy per epoch: mean over seeds with a min-max band, one line per norm."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for norm, frames in curves.items():
        acc = np.stack([100 * f["val_accuracy"].to_numpy() for f in frames])
        epochs = frames[0]["epoch"].to_numpy()
        ax.plot(epochs, acc.mean(0), "-o", label=NAMES[norm])
        ax.fill_between(epochs, acc.min(0), acc.max(0), alpha=0.15)
    ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="Validation accuracy per normalisation")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_small_batch(sb: pd.DataFrame) -> plt.Figure:
    """Test error versus batch size per norm (log2 x axis)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    test = sb[sb["split"] == "test"]
    for norm, g in test.groupby("norm", sort=False):
        g = g.sort_values("key")
        ax.plot(g["key"], 100 * (1 - g["accuracy"]), "-o", label=NAMES[norm])
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(test["key"].unique()), [str(b) for b in sorted(test["key"].unique())])
    ax.set(xlabel="batch size", ylabel="test error (%)", title="Small-batch regime (same images seen per run)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_bin_gates(gates: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for run, g in gates.groupby("run"):
        ax.plot(g["layer"], g["mean"], "-o", label=f"{run} (mean over channels)")
        ax.fill_between(g["layer"], g["min"], g["max"], alpha=0.1)
    ax.axhline(1.0, color="gray", lw=0.8, ls=":")
    ax.set(xlabel="BIN layer (input → output)", ylabel="gate ρ (1 = BN, 0 = IN)", ylim=(-0.05, 1.05), title="Batch-Instance Norm gates after training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def observations(summ: pd.DataFrame, sb: pd.DataFrame, gates: pd.DataFrame) -> list[str]:
    """Sentences for the report, computed from the results (never typed by hand)."""
    test = summ[summ["split"] == "test"].set_index("norm", drop=False)
    acc = {n: 100 * test.loc[n, "accuracy_mean"] for n in test.index}
    best = max(acc, key=acc.get)
    out = [f"**Winner:** {NAMES[best]} with {acc[best]:.2f} % mean test accuracy; ranking: "
           + " > ".join(f"{NAMES[n]} {acc[n]:.2f} %" for n in sorted(acc, key=acc.get, reverse=True)) + "."]
    if "in" in acc and "bn" in acc:
        out.append(f"**Instance norm** reaches {acc['in']:.2f} % vs BatchNorm's {acc['bn']:.2f} % "
                   f"({acc['in'] - acc['bn']:+.2f} points): normalising every image's feature maps on their own removes "
                   "per-image contrast and brightness, which is information a classifier can use.")
    if not gates.empty:
        m = gates["mean"].mean()
        out.append(f"**BIN's gate** ρ ends at {m:.2f} on average over layers and seeds (1 = pure BN, 0 = pure IN; "
                   f"layer means range {gates['mean'].min():.2f}–{gates['mean'].max():.2f}); ρ starts at 1, so the network "
                   + ("keeps mostly batch statistics." if m > 0.7 else "moves a substantial part of the way towards instance statistics."))
    test_sb = sb[sb["split"] == "test"]
    small = test_sb["key"].min()
    errs = {n: 100 * (1 - g.loc[g["key"] == small, "accuracy"].iloc[0]) for n, g in test_sb.groupby("norm")}
    if {"bn", "gn"} <= set(errs):
        d = errs["bn"] - errs["gn"]
        verdict = "reproduces the direction of" if d > 0 else "does not reproduce"
        out.append(f"**Small batches:** at batch {small}, GroupNorm's test error is {errs['gn']:.2f} % vs BatchNorm's "
                   f"{errs['bn']:.2f} % ({d:+.2f} points in GN's favour); the Group Normalization paper reports GN's error "
                   f"~10.6 points lower than BN's at batch 2 on ImageNet, so Fashion-MNIST {verdict} that effect.")
    return out
