"""Figures of the autoencoder / VAE stages: reconstructions, latent space, samples, FGSM, anomaly ROC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from genpipe.pipeline.plots import GRAY, image_grid, plt

def plot_reconstructions(x: torch.Tensor, ae: torch.Tensor, vae: torch.Tensor, title: str) -> plt.Figure:
    """Input vs AE vs VAE reconstruction, (k, 1, H, W) each."""
    return image_grid([t[:, 0].numpy() for t in (x, ae, vae)], ["input", "AE", "VAE"], title)


def plot_traversal(grid: torch.Tensor, row_labels: list[str], sigmas: np.ndarray, title: str) -> plt.Figure:
    """grid (rows, steps, 1, H, W): each row sweeps one latent dimension from -3 to +3 sigma."""
    return image_grid([g[:, 0].numpy() for g in grid], row_labels, title, [f"{s:+.1f}σ" for s in sigmas])


def plot_interpolation(rows: list[tuple[str, torch.Tensor]], title: str) -> plt.Figure:
    """Each row (label, (steps, 1, H, W)) walks from one test image's code to another's."""
    return image_grid([r[:, 0].numpy() for _, r in rows], [label for label, _ in rows], title)


def plot_latent_2d(points: np.ndarray, labels: np.ndarray, classes: list[str], explained: np.ndarray, title: str) -> plt.Figure:
    """Test latents (mu) projected on their first two principal components, coloured by class."""
    fig, ax = plt.subplots(figsize=(6.8, 5.6))
    cmap = plt.get_cmap("tab10")
    for c, name in enumerate(classes):
        m = labels == c
        ax.scatter(points[m, 0], points[m, 1], s=3, alpha=0.5, color=cmap(c), label=name, rasterized=True)
    ax.set(xlabel=f"PC 1 ({100 * explained[0]:.0f} % of variance)", ylabel=f"PC 2 ({100 * explained[1]:.0f} %)", title=title)
    ax.legend(markerscale=4, fontsize=7, loc="best", framealpha=0.8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_fgsm_curve(curve: pd.DataFrame, models: list[str], title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, name in enumerate(models):
        color = plt.get_cmap("tab10")(i)
        ax.plot(curve["eps"], 100 * curve[name], "-o", color=color, label=f"{name} (budget ε)")
        ax.plot(curve["eps"], 100 * curve[f"{name}_step"], ":", color=color, alpha=0.7, label=f"{name} (single step ε)")
    ax.set(xlabel="ε (pixel scale, images in [0, 1])", ylabel="test accuracy (%)", title=title, ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_fgsm_examples(panels: list[dict], classes: list[str], eps: float, title: str) -> plt.Figure:
    """Per example: clean image, sign perturbation, adversarial image, with predictions."""
    fig, axes = plt.subplots(len(panels), 3, figsize=(5.4, 1.9 * len(panels)), squeeze=False)
    for i, p in enumerate(panels):
        for j, (img, label, kw) in enumerate((
            (p["clean"], f"{p['model']}: {classes[p['pred_clean']]}\n(true {classes[p['label']]})", GRAY),
            (p["delta"], f"perturbation ε={eps:g}", {"cmap": "seismic", "vmin": -eps, "vmax": eps}),
            (p["adv"], f"adversarial: {classes[p['pred_adv']]}", GRAY),
        )):
            ax = axes[i, j]
            ax.imshow(img, **kw)
            ax.set_title(label, fontsize=7, color="red" if j == 2 and p["pred_adv"] != p["label"] else "black")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_roc(curves: dict[str, pd.DataFrame], aucs: dict[str, float], title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    for name, c in curves.items():
        ax.plot(c["fpr"], c["tpr"], label=f"{name} (AUC {aucs[name]:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="gray", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_score_histograms(scores: dict[str, np.ndarray], is_anomaly: np.ndarray, anomaly_name: str, title: str) -> plt.Figure:
    fig, axes = plt.subplots(1, len(scores), figsize=(4.6 * len(scores), 3.4), squeeze=False)
    for ax, (name, s) in zip(axes[0], scores.items()):
        bins = np.linspace(*np.percentile(s, [0.5, 99.5]), 60)
        ax.hist(s[~is_anomaly], bins=bins, alpha=0.6, density=True, label="other classes")
        ax.hist(s[is_anomaly], bins=bins, alpha=0.6, density=True, label=f"{anomaly_name} (held out)")
        ax.set(xlabel=f"{name} (nats)", ylabel="density")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_loss_curves(curves: dict[str, pd.DataFrame], title: str) -> plt.Figure:
    """Reconstruction and KL terms per epoch (train and val) for each model."""
    fig, (ax_r, ax_k) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, c in curves.items():
        for split, style in (("train", "-o"), ("val", "--s")):
            ax_r.plot(c["epoch"], c[f"{split}_recon"], style, label=f"{name} {split}")
            ax_k.plot(c["epoch"], c[f"{split}_kl"], style, label=f"{name} {split}")
    ax_r.set(xlabel="epoch", ylabel="nats / image", title="reconstruction −log p(x|z)")
    ax_k.set(xlabel="epoch", ylabel="nats / image", title="KL(q(z|x) ‖ p(z))")
    for ax in (ax_r, ax_k):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
