"""Stage vae_figures: reconstructions (input vs AE vs VAE), latent traversals, interpolations,
a 2-D PCA view of the VAE's test latents coloured by class, and the loss curves of both models."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from genpipe.vae import autoencoder
from genpipe.data import datasets as data
from genpipe.pipeline.params import load_params
from genpipe.pipeline.plots import save_figure
from genpipe.vae.plots import plot_interpolation, plot_latent_2d, plot_loss_curves, plot_reconstructions, plot_traversal


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ae", required=True, type=Path, help="train_ae run directory")
    ap.add_argument("--vae", required=True, type=Path, help="train_vae run directory")
    ap.add_argument("--data", required=True, type=Path, help="Fashion-MNIST root written by the download stage")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p = load_params("vae_figures", args.params)
    spec = data.get_spec("fashion_mnist")
    x_u8, y = data.load_split(spec, args.data, train=False)
    x = autoencoder.images(x_u8)
    ae, vae = autoencoder.load(args.ae), autoencoder.load(args.vae)
    g = torch.Generator().manual_seed(p["seed"])
    # one test image per class, seeded
    picks = torch.stack([(y == c).nonzero().squeeze(1)[torch.randint(int((y == c).sum()), (1,), generator=g)][0] for c in range(10)])

    with torch.inference_mode():
        recon = [m.decode(m.encode(x[picks])[0]) for m in (ae, vae)]
        mu, log_var = vae.encode(x)
    save_figure(plot_reconstructions(x[picks], *recon, "Fashion-MNIST test images: input, AE and VAE reconstructions"), args.out / "reconstructions.png")

    dims = min(p["traverse_dims"], vae.config.latent_dim)
    kl_per_dim = 0.5 * (mu.square() + log_var.exp() - 1 - log_var).mean(0)
    scale = mu.std(0)  # sigma of each latent over the test set (the aggregate posterior)
    grids, labels = [], []
    for i in picks[: p["traverse_images"]].tolist():
        grids.append(autoencoder.traversal(vae, x[i], dims, p["steps"], scale))
        labels += [f"{spec.classes[y[i]]}: z[{d}]" for d in range(dims)]
    kl = ", ".join(f"{v:.1f}" for v in kl_per_dim[:dims].tolist())
    title = f"VAE latent traversals (±3 σ of each dimension over the test set); KL of z[0..{dims - 1}]: {kl} nats"
    save_figure(plot_traversal(torch.cat(grids), labels, np.linspace(-3, 3, p["steps"]), title), args.out / "traversal.png")

    pairs = picks.view(-1, 2)[: p["interpolation_pairs"]]
    rows = []
    for a, b in pairs.tolist():
        for name, m in (("VAE", vae), ("AE", ae)):
            rows.append((f"{name}: {spec.classes[y[a]]} → {spec.classes[y[b]]}", autoencoder.interpolate(m, x[a], x[b], p["steps"])))
    save_figure(plot_interpolation(rows, "Linear interpolation between the codes of two test images"), args.out / "interpolation.png")

    pts, explained = autoencoder.pca_2d(mu)
    save_figure(plot_latent_2d(pts.numpy(), y.numpy(), spec.classes, explained.numpy(), "VAE test latents (mu), first two principal components"), args.out / "latent_pca.png")

    curves = {"AE": pd.read_csv(args.ae / "curves.tsv", sep="\t"), "VAE": pd.read_csv(args.vae / "curves.tsv", sep="\t")}
    save_figure(plot_loss_curves(curves, "Loss terms per epoch"), args.out / "loss_curves.png")


if __name__ == "__main__":
    main()
