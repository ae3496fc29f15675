"""Stage sample_vae: draw samples from the VAE's prior, and the AE baseline, as samples.npz.

<out>/vae: z ~ N(0, I) decoded by the VAE (the Bernoulli means, as uint8).
<out>/ae_gaussian: z ~ N(0, I) decoded by the plain autoencoder's decoder -- the baseline that
shows what the KL term buys: the AE's codes are not distributed like N(0, I).
Each directory gets samples.npz (unconditional: labels -1) and samples.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from genpipe.vae import autoencoder
from genpipe.scoring import samples
from genpipe.pipeline.params import load_params
from genpipe.pipeline.plots import plot_samples, save_figure


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vae", required=True, type=Path, help="train_vae run directory")
    ap.add_argument("--ae", required=True, type=Path, help="train_ae run directory")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p = load_params("sample_vae", args.params)
    for name, run_dir, title in (("vae", args.vae, "VAE: decoded z ~ N(0, I)"),
                                 ("ae_gaussian", args.ae, "AE decoder on z ~ N(0, I) (baseline)")):
        images = samples.to_uint8(autoencoder.sample_prior(autoencoder.load(run_dir), p["n"], p["seed"]))
        samples.save(args.out / name / "samples.npz", images, np.full(len(images), samples.UNCONDITIONAL), "fashion_mnist")
        save_figure(plot_samples(images[:128], title), args.out / name / "samples.png")
        print(f"{name}: {len(images)} samples")


if __name__ == "__main__":
    main()
