"""Figures: training curves, confusion matrices and sample grids (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from genpipe.pipeline.io import atomic_path  # noqa: E402

# Fixed metadata keeps PNG bytes reproducible across runs.
_PNG_META = {"Software": None}


def save_figure(fig: plt.Figure, dest: str | Path) -> None:
    """Save ``fig`` as PNG atomically and close it."""
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight", metadata=_PNG_META)
    plt.close(fig)


def plot_curves(curves: pd.DataFrame, title: str) -> plt.Figure:
    """Loss and accuracy per epoch, train vs validation."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    for split, style in (("train", "-o"), ("val", "--s")):
        ax_loss.plot(curves["epoch"], curves[f"{split}_loss"], style, label=split)
        ax_acc.plot(curves["epoch"], 100 * curves[f"{split}_accuracy"], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion(cm: np.ndarray, classes: list[str], title: str) -> plt.Figure:
    """Row-normalised confusion matrix (true label rows) with counts in each cell."""
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, classes, rotation=45, ha="right")
    ax.set_yticks(ticks, classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of true class")
    fig.tight_layout()
    return fig


def plot_class_grid(images: np.ndarray, classes: list[str], title: str) -> plt.Figure:
    """Grid of uint8 images (classes, k, H, W), one row per class labelled with its name."""
    n_cls, k = images.shape[:2]
    fig, axes = plt.subplots(n_cls, k, figsize=(0.8 * k + 1.2, 0.8 * n_cls), squeeze=False)
    for i in range(n_cls):
        for j in range(k):
            ax = axes[i, j]
            ax.imshow(images[i, j], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(classes[i], rotation=0, ha="right", va="center", fontsize=8)
    height = 0.8 * n_cls
    fig.suptitle(title, y=1 - 0.12 / height)
    fig.subplots_adjust(wspace=0.05, hspace=0.05, top=1 - 0.4 / height)
    return fig


def plot_gradcam(panels: list, n_classes: int, title: str) -> plt.Figure:
    """Rows = classes; columns = a correctly and a wrongly classified image with its heatmap.

    ``panels`` holds, row by row, ``(image uint8 (H, W), cam (H, W) in [0, 1], true, predicted)``
    or ``None`` where a class has no such image.
    """
    fig, axes = plt.subplots(n_classes, 2, figsize=(4.6, 1.35 * n_classes), squeeze=False)
    for k, (ax, panel) in enumerate(zip(axes.flat, panels)):
        ax.set_xticks([])
        ax.set_yticks([])
        if k < 2:
            ax.set_title("correct" if k == 0 else "misclassified", fontsize=9)
        if panel is None:
            ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            continue
        img, cam, true, pred = panel
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        ax.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_xlabel(f"true {true} / pred {pred}", fontsize=7, color="black" if true == pred else "tab:red")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


GRAY = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}


def image_grid(rows: list[np.ndarray], row_labels: list[str], title: str, col_labels: list[str] | None = None) -> plt.Figure:
    """Rows of [0, 1] images (k, H, W), each row labelled on the left."""
    n, k = len(rows), len(rows[0])
    fig, axes = plt.subplots(n, k, figsize=(0.75 * k + 1.4, 0.75 * n + 0.5), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(k):
            ax = axes[i, j]
            ax.imshow(row[j], **GRAY)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize=8)
            if col_labels and i == 0:
                ax.set_title(col_labels[j], fontsize=7)
    fig.suptitle(title)
    fig.subplots_adjust(wspace=0.04, hspace=0.04)
    return fig


def plot_samples(images: np.ndarray, title: str, per_row: int = 16) -> plt.Figure:
    """uint8 samples (N, H, W) in rows of ``per_row``."""
    n = len(images) // per_row * per_row
    rows = [images[i : i + per_row] / 255.0 for i in range(0, n, per_row)]
    return image_grid(rows, [""] * len(rows), title)
