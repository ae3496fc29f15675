"""Stage train_latent_probe: classify Fashion-MNIST from the VAE encoder's mu.

Variant ``frozen`` trains only an MLP head on the fixed latents (how linearly-ish separable is the
unsupervised representation); ``finetune`` trains encoder and head end to end from the VAE's
weights. Writes <out>/model.safetensors + config.json, curves.tsv and metrics.json (accuracy,
micro-F1, macro-F1 on train, val and test).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.vae import autoencoder
from genpipe.vae import latent_probe
from genpipe.pipeline.params import load_params


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", required=True, choices=latent_probe.VARIANTS)
    ap.add_argument("--vae", required=True, type=Path, help="train_vae run directory")
    ap.add_argument("--data", required=True, type=Path, help="Fashion-MNIST root written by the download stage")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p = load_params("train_latent_probe", args.params)
    splits = autoencoder.load_splits("fashion_mnist", args.data, p)
    latent_probe.train(args.variant, args.vae, splits, args.out, p)


if __name__ == "__main__":
    main()
