"""Vision Transformer (Dosovitskiy et al. 2021), written as the course teaches it.

    image (B, C, H, W) ─ patch embedding (conv k = s = patch) ─ (B, N, D) tokens
      ─ prepend [CLS], add learnt position embedding ─ (B, 1 + N, D)
      ─ depth × pre-norm block:  x = x + MSA(LN(x));  x = x + MLP(LN(x))
      ─ LN ─ [CLS] ─ linear head ─ logits

Multi-head self-attention per head h: A_h = softmax(q_h k_hᵀ / √d), out_h = A_h v_h, d = D / heads.
``forward_features`` returns the normed class token and patch tokens, and on request the last
block's attention weights (B, heads, 1 + N, 1 + N): what DINO reads its attention maps from. Inputs
of another size (DINO's local crops) get a bicubically interpolated position embedding.

The U-Net's attention (models/unet.py) is a GroupNorm block over feature maps with its feed-forward
fused in and no weights returned, so this file has its own; both compute the same softmax(q kᵀ/√d) v.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ViTConfig:
    image_size: int = 28
    patch_size: int = 4
    in_channels: int = 1
    dim: int = 64           # token width D
    depth: int = 6          # transformer blocks
    heads: int = 4          # attention heads; head width D / heads
    mlp_ratio: float = 2.0  # MLP hidden width = mlp_ratio * D
    dropout: float = 0.0    # after attention / MLP projections
    num_classes: int = 10   # 0: no head (a feature backbone, e.g. DINO's)

    def __post_init__(self) -> None:
        for key in ("image_size", "patch_size", "in_channels", "dim", "depth", "heads"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ViTConfig.{key} must be a positive integer, got {value!r}")
        if not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise ValueError(f"ViTConfig.num_classes must be an integer >= 0, got {self.num_classes!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"ViTConfig.patch_size={self.patch_size} does not divide image_size={self.image_size}")
        if self.dim % self.heads:
            raise ValueError(f"ViTConfig.heads={self.heads} does not divide dim={self.dim}")
        if not self.mlp_ratio > 0:
            raise ValueError(f"ViTConfig.mlp_ratio must be > 0, got {self.mlp_ratio!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ViTConfig.dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ViTFeatures(NamedTuple):
    cls_token: torch.Tensor             # (B, D), after the final LayerNorm
    patch_tokens: torch.Tensor          # (B, N, D), after the final LayerNorm
    attention: torch.Tensor | None      # (B, heads, 1 + N, 1 + N) of the last block, or None


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, return_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, n, c = x.shape
        d = c // self.heads
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d).permute(2, 0, 3, 1, 4)  # each (B, heads, N, d)
        if return_weights:
            weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1)  # (B, heads, N, N)
            out = weights @ v
        else:  # the same computation, fused (no (N, N) matrix kept for backward)
            weights, out = None, F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(b, n, c)  # merge heads
        return self.drop(self.proj(out)), weights


class Block(nn.Module):
    """Pre-norm transformer block: x + MSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, return_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        h, weights = self.attn(self.norm1(x), return_weights)
        x = x + h
        return x + self.mlp(self.norm2(x)), weights


class ViT(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = cfg = config
        self.patch_embed = nn.Conv2d(cfg.in_channels, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.num_patches, cfg.dim))
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.num_classes) if cfg.num_classes else nn.Identity()
        self.feature_dim = cfg.dim
        self._init_weights()

    def _init_weights(self) -> None:
        """timm's ViT init: truncated normal (std 0.02) for embeddings and linear weights, zero biases."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        w = self.patch_embed.weight
        nn.init.trunc_normal_(w.view(w.shape[0], -1), std=math.sqrt(1.0 / w[0].numel()))  # like a linear layer on the patch
        nn.init.zeros_(self.patch_embed.bias)

    def position_embedding(self, gh: int, gw: int) -> torch.Tensor:
        """(1, 1 + gh·gw, D): the learnt embedding, its patch grid resized bicubically when (gh, gw) differs."""
        g = self.config.grid
        if (gh, gw) == (g, g):
            return self.pos_embed
        cls_pos, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        grid = grid.reshape(1, g, g, -1).permute(0, 3, 1, 2)  # (1, D, g, g)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return torch.cat([cls_pos, grid.flatten(2).transpose(1, 2)], dim=1)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1 + N, D): patch embeddings behind the class token, plus positions."""
        p = self.config.patch_size
        if x.shape[-1] % p or x.shape[-2] % p:
            raise ValueError(f"input of {tuple(x.shape[-2:])} pixels is not a multiple of patch_size={p}")
        t = self.patch_embed(x)  # (B, D, gh, gw)
        gh, gw = t.shape[-2:]
        t = t.flatten(2).transpose(1, 2)  # (B, N, D)
        t = torch.cat([self.cls_token.expand(len(t), -1, -1), t], dim=1)
        return t + self.position_embedding(gh, gw)

    def forward_features(self, x: torch.Tensor, return_attention: bool = False) -> ViTFeatures:
        t = self.tokens(x)
        weights = None
        for i, block in enumerate(self.blocks):
            t, weights = block(t, return_weights=return_attention and i == len(self.blocks) - 1)
        t = self.norm(t)
        return ViTFeatures(t[:, 0], t[:, 1:], weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> logits (B, num_classes), or the class token (B, D) when num_classes = 0."""
        return self.head(self.forward_features(x).cls_token)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
