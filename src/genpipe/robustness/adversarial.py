"""L∞ attacks on [0, 1] images: FGSM (Goodfellow et al., 2015) and PGD (Madry et al., 2018).

    FGSM:  x_adv = clip(x + eps * sign(grad_x CE(f(x), y)), 0, 1)
    PGD:   x_0 = x + eps * u, u ~ U(-1, 1)  (random start; x_0 = x without it)
           x_{k+1} = Proj(x_k + alpha * sign(grad_x CE(f(x_k), y)))   for k < steps
           Proj = clip to the eps-ball around x intersected with [0, 1]

Every model here takes [0, 1] pixels, so one epsilon means the same perturbation for all of
them; each classifier gets its input normalisation inside :class:`PixelInput`. PGD with one step,
no random start and alpha = eps is FGSM, bit for bit (tests/unit/test_adversarial.py).

Hand-written rather than torchattacks / ART / foolbox: the two attacks are twenty lines, and
owning them keeps the projection exact (never outside the ball or [0, 1]), the shared random start
seeded from params, the FGSM gradient reused across the eps grid, and no dependency that pins
its own torch or numpy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PixelInput(nn.Module):
    """Wraps a classifier that expects standardised input so it takes [0, 1] pixels.

    ``memory_format``: the layout the wrapped model was trained and scored in (the ResNet
    channels_last, the ViT contiguous), so clean predictions match its own stage's bit for bit.
    """

    def __init__(self, model: nn.Module, mean: float, std: float, memory_format: torch.memory_format = torch.channels_last) -> None:
        super().__init__()
        self.model, self.mean, self.std, self.memory_format = model, mean, std, memory_format

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(((x - self.mean) / self.std).contiguous(memory_format=self.memory_format))


def check_eps(eps: float, name: str = "eps") -> None:
    """Budgets are in pixel units of [0, 1] images: anything outside [0, 1] is a mistake, named."""
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"{name} = {eps} is outside [0, 1] (images are in [0, 1]; eps is in the same units, e.g. 8/255 = 0.031)")


def grad_sign(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sign(grad_x CE(model(x), y)) for a batch (B, C, H, W); the model's parameters get no grad."""
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad.sign()


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Adversarial images for a batch (B, 1, H, W) in [0, 1]; eps = 0 returns x unchanged."""
    check_eps(eps)
    if eps == 0:
        return x.clone()
    return (x + eps * grad_sign(model, x, y)).clamp(0.0, 1.0).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, alpha: float,
        random_start: bool = True, start: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """L∞ PGD: ``steps`` signed-gradient steps of size ``alpha``, each projected onto the eps-ball ∩ [0, 1].

    ``start``: the random start's direction u in [-1, 1] (shape of x), so one draw serves every eps
    and every model; without it u is drawn from ``generator``. eps = 0 returns x unchanged.
    """
    check_eps(eps)
    if steps < 1 or alpha <= 0:
        raise ValueError(f"PGD needs steps >= 1 and alpha > 0, got steps={steps}, alpha={alpha}")
    if eps == 0:
        return x.clone()
    lo, hi = (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0)  # the eps-ball ∩ [0, 1], per pixel
    if random_start:
        u = start if start is not None else torch.rand(x.shape, generator=generator) * 2 - 1
        x_adv = torch.min(torch.max(x + eps * u, lo), hi)
    else:
        x_adv = x.clone()
    for _ in range(steps):
        x_adv = torch.min(torch.max(x_adv + alpha * grad_sign(model, x_adv, y), lo), hi)
    return x_adv.detach()


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
