"""Grad-CAM (Selvaraju et al. 2017) against the ResNet's last convolutional stage.

For class c with score y_c and last-stage activations A (B, K, h, w):
    alpha_k = mean_{i,j} dy_c / dA_k[i, j]          (channel importance)
    L_c     = ReLU(sum_k alpha_k A_k)               (h, w), upsampled to the input size
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def grad_cam(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None, layer: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmaps (B, H, W) scaled to [0, 1] for ``target`` classes (default: predicted) and the logits.

    ``layer`` defaults to ``model.stages[-1]``, the last convolutional stage of our ResNet.
    """
    layer = layer if layer is not None else model.stages[-1]
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(x)
            acts = captured[-1]  # (B, K, h, w)
            cls = logits.argmax(1) if target is None else target
            score = logits.gather(1, cls[:, None]).sum()
            (grads,) = torch.autograd.grad(score, acts)
    finally:
        handle.remove()
    alpha = grads.mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
    cam = F.relu((alpha * acts).sum(dim=1, keepdim=True))  # (B, 1, h, w)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    cam = cam / cam.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    return cam.detach(), logits.detach()
