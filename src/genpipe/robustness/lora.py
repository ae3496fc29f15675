"""LoRA (Hu et al., ICLR 2022) on weight tensors, written as a parametrization.

    W' = W + (alpha / r) * B @ A,   A (r, in) Kaiming-uniform, B (out, r) = 0

so at initialisation W' = W exactly and the model's outputs are unchanged; only A and B train.
A parametrization (``torch.nn.utils.parametrize``) rather than a wrapper module: open_clip's
attention pooling reads ``q_proj.weight`` directly (``F.multi_head_attention_forward``) and its
ViT blocks read ``nn.MultiheadAttention.in_proj_weight``, so replacing a Linear's ``forward``
would be bypassed; a parametrized tensor is what every reader sees. :func:`merge` folds B @ A
into W and removes the parametrization: the result is the plain architecture again, loadable by
whatever loads the original (open_clip here).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize


class LoRA(nn.Module):
    """The parametrization of one (out, in) weight: ``W + scale * B @ A``."""

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.A = nn.Parameter(torch.empty(rank, in_features))
        self.B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # as the LoRA reference (loralib) initialises A
        self.scale = alpha / rank

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.scale * (self.B @ self.A).to(weight.dtype)


def attention_weights(module: nn.Module) -> list[tuple[nn.Module, str]]:
    """(owner, tensor name) of every attention projection matrix in ``module``.

    open_clip's ModifiedResNet: the attention pool's q/k/v/c projections; its VisionTransformer:
    each block's ``attn.in_proj_weight`` (q, k, v stacked) and ``attn.out_proj.weight``.
    """
    out: list[tuple[nn.Module, str]] = []
    for name, m in module.named_modules():
        if isinstance(m, nn.MultiheadAttention):
            out += [(m, "in_proj_weight"), (m.out_proj, "weight")]
        elif name.endswith("attnpool") and hasattr(m, "q_proj"):
            out += [(getattr(m, p), "weight") for p in ("q_proj", "k_proj", "v_proj", "c_proj")]
    return out


def apply(module: nn.Module, rank: int, alpha: float) -> list[nn.Parameter]:
    """Freeze ``module`` and add LoRA to its attention projections; returns the trainable A and B tensors."""
    targets = attention_weights(module)
    if not targets:
        raise ValueError(f"no attention projection found in {type(module).__name__} for LoRA")
    for p in module.parameters():
        p.requires_grad_(False)
    params: list[nn.Parameter] = []
    for owner, name in targets:
        w = getattr(owner, name)
        lora = LoRA(w.shape[0], w.shape[1], rank, alpha).to(w.dtype)
        parametrize.register_parametrization(owner, name, lora)
        params += [lora.A, lora.B]
    return params


def merge(module: nn.Module) -> None:
    """Fold every LoRA into its weight (W + scale B A) and remove the parametrizations, in place."""
    for m in list(module.modules()):
        if parametrize.is_parametrized(m):
            for name in list(m.parametrizations.keys()):
                parametrize.remove_parametrizations(m, name, leave_parametrized=True)


def state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA matrices alone, keyed by their owners' names (``<module>.<tensor>.A`` / ``.B``)."""
    out = {}
    for mod_name, m in module.named_modules():
        if parametrize.is_parametrized(m):
            for name, plist in m.parametrizations.items():
                for lora in plist:
                    if isinstance(lora, LoRA):
                        out[f"{mod_name}.{name}.A"], out[f"{mod_name}.{name}.B"] = lora.A.detach().clone(), lora.B.detach().clone()
    return out
