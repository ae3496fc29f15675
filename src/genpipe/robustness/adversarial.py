"""Fast Gradient Sign Method (Goodfellow et al., 2015) on [0, 1] images.

    x_adv = clip(x + eps * sign(grad_x CE(f(x), y)), 0, 1)

Every model here takes [0, 1] pixels, so one epsilon means the same perturbation for all of
them; the ResNet classifier gets its input normalisation inside :class:`PixelInput`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PixelInput(nn.Module):
    """Wraps a classifier that expects standardised input so it takes [0, 1] pixels."""

    def __init__(self, model: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.model, self.mean, self.std = model, mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last))


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Adversarial images for a batch (B, 1, H, W) in [0, 1]; eps = 0 returns x unchanged."""
    if eps == 0:
        return x.clone()
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return (x + eps * grad.sign()).clamp(0.0, 1.0).detach()


def accuracy_under_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, batch_size: int = 1000) -> tuple[float, torch.Tensor]:
    """Accuracy on FGSM images at ``eps`` and the predictions (batched like genpipe.classify.train.predict)."""
    model.eval()
    preds = []
    for i in range(0, len(x), batch_size):
        x_adv = fgsm(model, x[i : i + batch_size], y[i : i + batch_size], eps)
        with torch.inference_mode():
            preds.append(model(x_adv).argmax(1))
    pred = torch.cat(preds)
    return (pred == y).float().mean().item(), pred
