"""Figures of the DDPM stages: sample grids, denoising trajectory, loss curve, quality versus NFE."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from genpipe.pipeline.plots import image_grid, plot_class_grid, plot_samples, plt, save_figure


def class_grid(images: np.ndarray, labels: np.ndarray, per_class: int, title: str, dest: Path) -> None:
    """The first ``per_class`` samples of each requested digit, one row per digit."""
    rows = np.stack([images[labels == c][:per_class] for c in range(10)])
    save_figure(plot_class_grid(rows, [str(c) for c in range(10)], title), dest)


def plain_grid(images: np.ndarray, title: str, dest: Path) -> None:
    save_figure(plot_samples(images, title, per_row=10), dest)


def trajectory(snaps: dict[int, torch.Tensor], title: str, dest: Path, rows: int = 6) -> None:
    """x_t of a few samples (rows) at the recorded timesteps (columns, from noise to x_0)."""
    keys = sorted((k for k in snaps if k >= 0), reverse=True) + [k for k in snaps if k < 0]
    cols = [snaps[k][:rows, 0].add(1).div(2).clamp(0, 1).numpy() for k in keys]
    grid = [np.stack([c[i] for c in cols]) for i in range(min(rows, len(cols[0])))]
    save_figure(image_grid(grid, [""] * len(grid), title, [f"t={k}" if k >= 0 else "x_0" for k in keys]), dest)


def loss_curve(curves: pd.DataFrame, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(curves["step"], curves["loss"], "-", lw=1.2)
    ax.set(xlabel="step", ylabel="ε-prediction MSE", yscale="log", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def quality_vs_nfe(table: pd.DataFrame, title: str) -> plt.Figure:
    """FID (same N for all samplers) and generation accuracy against network evaluations per sample."""
    fig, (ax_fid, ax_acc) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    for _, r in table.iterrows():
        ax_fid.plot(r["nfe"], r["fid_same_n"], "o", ms=8, label=f"{r['sampler']} ({r['steps']} steps)")
        ax_acc.plot(r["nfe"], 100 * r["generation_accuracy"], "o", ms=8, label=r["sampler"])
    ax_fid.set(xscale="log", xlabel="network evaluations per sample", ylabel=f"FID (N = {int(table['n_same'].iloc[0])})",
               title="FID, classifier features")
    ax_acc.set(xscale="log", xlabel="network evaluations per sample", ylabel="generation accuracy (%)", title="generation accuracy")
    for ax in (ax_fid, ax_acc):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
