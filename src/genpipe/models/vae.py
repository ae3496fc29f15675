"""Convolutional autoencoder and variational autoencoder for 28x28 grey images.

Both share the encoder body (two stride-2 convolutions and an MLP) and the decoder (its mirror
with transposed convolutions). The decoder outputs Bernoulli *logits* per pixel; images are
pixel intensities in [0, 1]. Losses are per image, summed over pixels, in nats:

    recon(x, x_hat) = BCE(x_hat_logits, x) = -log p(x | z)
    KL(q(z|x) || N(0, I)) = 1/2 * sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)
    ELBO = -recon - beta * KL       (beta = 1 gives the evidence lower bound)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class AutoencoderConfig:
    kind: str = "vae"  # "ae" (deterministic code) or "vae" (mu and log_var)
    latent_dim: int = 16
    width: int = 32  # channels of the first conv; the second has 2 * width
    hidden: int = 256

    def __post_init__(self) -> None:
        if self.kind not in ("ae", "vae"):
            raise ValueError(f"kind must be 'ae' or 'vae', got {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Encoder(nn.Module):
    """(B, 1, 28, 28) in [0, 1] -> (B, out_dim)."""

    def __init__(self, width: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, width, 4, stride=2, padding=1), nn.ReLU(),  # (B, w, 14, 14)
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.ReLU(),  # (B, 2w, 7, 7)
            nn.Flatten(),
        )
        self.mlp = nn.Sequential(nn.Linear(2 * width * 49, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.conv(x))


class Decoder(nn.Module):
    """(B, latent_dim) -> Bernoulli logits (B, 1, 28, 28)."""

    def __init__(self, width: int, hidden: int, latent_dim: int) -> None:
        super().__init__()
        self.width = width
        self.mlp = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * width * 49), nn.ReLU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.ReLU(),  # (B, w, 14, 14)
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),  # (B, 1, 28, 28)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.mlp(z).view(-1, 2 * self.width, 7, 7))


def reparameterise(mu: torch.Tensor, log_var: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I): a sample of q(z|x) differentiable in mu and log_var."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * log_var) * eps


def kl_divergence(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(log_var))) || N(0, I)) per row, in nats (closed form)."""
    return 0.5 * (mu.square() + log_var.exp() - 1.0 - log_var).sum(dim=1)


def reconstruction_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x | z) under independent Bernoulli pixels, per image (nats)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)


class Autoencoder(nn.Module):
    """Deterministic (kind="ae") or variational (kind="vae") autoencoder."""

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        out = config.latent_dim * (2 if config.kind == "vae" else 1)
        self.encoder = Encoder(config.width, config.hidden, out)
        self.decoder = Decoder(config.width, config.hidden, config.latent_dim)

    @property
    def variational(self) -> bool:
        return self.config.kind == "vae"

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mu, log_var) for the VAE; (code, None) for the AE."""
        h = self.encoder(x)
        if not self.variational:
            return h, None
        mu, log_var = h.chunk(2, dim=1)
        return mu, log_var.clamp(-30.0, 20.0)  # keeps exp() finite; far outside values seen in training

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (the Bernoulli means)."""
        return torch.sigmoid(self.decoder(z))

    def loss_terms(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Per-image recon and KL (nats); KL is zero for the AE. The VAE samples z = mu + sigma*eps."""
        mu, log_var = self.encode(x)
        if log_var is None:
            return {"recon": reconstruction_nll(self.decoder(mu), x), "kl": torch.zeros(len(x))}
        z = reparameterise(mu, log_var, generator) if self.training else mu
        return {"recon": reconstruction_nll(self.decoder(z), x), "kl": kl_divergence(mu, log_var)}

    @torch.inference_mode()
    def elbo_terms(self, x: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Single-sample ELBO estimate per image: recon at z ~ q(z|x), KL in closed form."""
        mu, log_var = self.encode(x)
        z = mu if log_var is None else reparameterise(mu, log_var, generator)
        kl = torch.zeros(len(x)) if log_var is None else kl_divergence(mu, log_var)
        recon = reconstruction_nll(self.decoder(z), x)
        return {"recon": recon, "kl": kl, "elbo": -(recon + kl)}
