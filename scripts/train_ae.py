"""Stage train_ae: train the convolutional autoencoder on Fashion-MNIST.

Writes <out>/model.safetensors + config.json, curves.tsv (train/val loss terms per epoch) and
metrics.json (test reconstruction NLL, KL, ELBO in nats per image, pixel MSE).
"""

from __future__ import annotations

from genpipe.vae.autoencoder import stage_main

if __name__ == "__main__":
    stage_main("ae", __doc__)
