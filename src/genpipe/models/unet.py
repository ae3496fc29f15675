"""The course's class-conditional U-Net for ε-prediction on 28×28 images.

    x_t (B, 1, 28, 28), t (B,), label (B,) -> ε̂ (B, 1, 28, 28)

    conv_in ─ [ResBlock × n (+Attention)] ─ Down ─ ... ─ middle (Res, Attn, Res) ─ ... ─ Up ─ conv_out
                 │ skip ──────────────────────────────────────────────────────────▶ concat

Time enters every ResBlock as sinusoidal features ("Attention Is All You Need") through an MLP;
the class enters as a learnt embedding added to it. Label ``num_classes`` is the learnt *null*
label: training drops the class to it with probability ``p_uncond``, so one network predicts
both ε(x_t, t, c) and ε(x_t, t, ∅) for classifier-free guidance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    channels: int = 32  # channels of the first level; level i has channels * mults[i]
    mults: tuple[int, ...] = (1, 2, 2)  # 28 -> 14 -> 7
    res_blocks: int = 1  # ResBlocks per level on the way down (one more on the way up)
    attn_resolutions: tuple[int, ...] = (7,)  # feature-map sizes that get an attention block
    heads: int = 4
    dropout: float = 0.1
    groups: int = 8  # GroupNorm groups
    num_classes: int = 10
    image_size: int = 28
    in_channels: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "mults", tuple(self.mults))
        object.__setattr__(self, "attn_resolutions", tuple(self.attn_resolutions))
        for m in self.mults:
            if (self.channels * m) % self.groups or (self.channels * m) % self.heads:
                raise ValueError(f"channels*mult = {self.channels * m} must be divisible by groups ({self.groups}) and heads ({self.heads})")
        if self.image_size % 2 ** (len(self.mults) - 1):
            raise ValueError(f"image_size {self.image_size} cannot be halved {len(self.mults) - 1} times")

    @property
    def null_label(self) -> int:
        return self.num_classes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) -> (B, dim): [sin(t ω_0..ω_{h-1}), cos(t ω_0..ω_{h-1})], ω_i = max_period^(-i/h), h = dim/2."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    """GN → SiLU → conv, + emb, GN → SiLU → dropout → conv; 1×1 conv on the residual if channels change."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]  # (B, C) -> (B, C, 1, 1)
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """GN → multi-head self-attention over the H·W positions → + x; GN → feed-forward → + x."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.q = nn.Linear(channels, channels)
        self.k = nn.Linear(channels, channels)
        self.v = nn.Linear(channels, channels)
        self.proj = nn.Linear(channels, channels)
        self.ff_norm = nn.GroupNorm(groups, channels)
        self.ff = nn.Sequential(nn.Linear(channels, 4 * channels), nn.GELU(), nn.Linear(4 * channels, channels))

    def _tokens(self, x: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
        return norm(x).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, HW, C)

    def attend(self, h: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C): softmax(q kᵀ / √d) v per head, heads split from and merged into C."""
        b, n, c = h.shape
        d = c // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:  # (B, N, C) -> (B, heads, N, d)
            return t.view(b, n, self.heads, d).transpose(1, 2)

        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1)  # (B, heads, N, N)
        out = (weights @ v).transpose(1, 2).reshape(b, n, c)  # merge heads
        return self.proj(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape

        def back(t: torch.Tensor) -> torch.Tensor:  # (B, HW, C) -> (B, C, H, W)
            return t.transpose(1, 2).reshape(b, c, hh, ww)

        x = x + back(self.attend(self._tokens(x, self.norm)))
        return x + back(self.ff(self._tokens(x, self.ff_norm)))


class UNet(nn.Module):
    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = cfg = config
        c0, emb_dim = cfg.channels, 4 * cfg.channels
        self.time_mlp = nn.Sequential(nn.Linear(c0, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(cfg.num_classes + 1, emb_dim)  # last row: the null label
        self.conv_in = nn.Conv2d(cfg.in_channels, c0, 3, padding=1)

        def block(c_in: int, c_out: int, size: int) -> nn.ModuleList:
            layers = [ResBlock(c_in, c_out, emb_dim, cfg.groups, cfg.dropout)]
            if size in cfg.attn_resolutions:
                layers.append(Attention(c_out, cfg.heads, cfg.groups))
            return nn.ModuleList(layers)

        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, ch, size = [c0], c0, cfg.image_size
        for i, m in enumerate(cfg.mults):
            for _ in range(cfg.res_blocks):
                self.down.append(block(ch, c0 * m, size))
                ch = c0 * m
                skips.append(ch)
            if i < len(cfg.mults) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
                size //= 2
        self.mid1 = ResBlock(ch, ch, emb_dim, cfg.groups, cfg.dropout)
        self.mid_attn = Attention(ch, cfg.heads, cfg.groups)
        self.mid2 = ResBlock(ch, ch, emb_dim, cfg.groups, cfg.dropout)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, m in reversed(list(enumerate(cfg.mults))):
            for _ in range(cfg.res_blocks + 1):
                self.up.append(block(ch + skips.pop(), c0 * m, size))
                ch = c0 * m
            if i > 0:
                self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))
                size *= 2
        self.norm_out = nn.GroupNorm(cfg.groups, ch)
        self.conv_out = nn.Conv2d(ch, cfg.in_channels, 3, padding=1)

    def embed(self, t: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.time_mlp(timestep_embedding(t, self.config.channels)) + self.label_emb(label)

    @staticmethod
    def _run(layers: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = layers[0](h, emb)
        for attn in layers[1:]:
            h = attn(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        emb = self.embed(t, label)
        h = self.conv_in(x)
        skips = [h]
        blocks = iter(self.down)
        for i in range(len(cfg.mults)):
            for _ in range(cfg.res_blocks):
                h = self._run(next(blocks), h, emb)
                skips.append(h)
            if i < len(cfg.mults) - 1:
                h = self.downsample[i](h)
                skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        blocks = iter(self.up)
        for j in range(len(cfg.mults)):
            for _ in range(cfg.res_blocks + 1):
                h = self._run(next(blocks), torch.cat([h, skips.pop()], dim=1), emb)
            if j < len(cfg.mults) - 1:
                h = self.upsample[j](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
