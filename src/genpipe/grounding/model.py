"""A small Grounding DINO (Liu et al. 2023): frozen image tokens + frozen text token states in, boxes out.

    image tokens (B, N, D_img) ─ linear + 2-D sin-cos position ─┐
    text states  (B, L, D_txt) ─ linear ───────────────────────┤
      fusion × F (feature enhancer): img += SA(img); img += CA(img → text); text += CA(text → img); MLPs
      ─ per image token: a box (around its cell) and a text-match logit      (the encoder proposals)
      ─ query selection: the top-Q tokens by match logit → Q slots, their boxes the reference boxes
      decoder × K: slot += SA(slots); slot += CA(slot → img); slot += CA(slot → text); MLP
      ─ per slot: box = sigmoid(logit(reference) + Δ) (cx, cy, w, h in [0, 1]), match logit

The match logit of a slot is its scaled dot product with the query's sentence state (the last real token
of the fused text states: Grounding DINO's contrastive alignment of objects and text, see MatchHead), so
the detector never sees a class list. The inputs
are plain tensors: another backbone or text tower plugs in with its own ``image_dim`` / ``text_dim``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genpipe.models.vit import Attention


@dataclass(frozen=True)
class GroundingConfig:
    image_dim: int = 64       # width of the backbone's tokens
    text_dim: int = 64        # width of the text tower's token states
    grid: int = 8             # the image tokens form a grid x grid square
    dim: int = 64             # the detector's width
    heads: int = 4
    fusion_layers: int = 2
    decoder_layers: int = 2
    slots: int = 4            # query slots (>= the most objects a query names)
    mlp_ratio: float = 2.0
    reference_size: float = 0.4  # side of an image token's initial box, share of the image

    def __post_init__(self) -> None:
        for key in ("image_dim", "text_dim", "grid", "dim", "heads", "slots"):
            if getattr(self, key) < 1:
                raise ValueError(f"GroundingConfig.{key} must be >= 1, got {getattr(self, key)!r}")
        if self.dim % self.heads or self.dim % 4:
            raise ValueError(f"GroundingConfig.dim={self.dim} must be divisible by heads={self.heads} and by 4")
        if self.slots > self.grid**2:
            raise ValueError(f"GroundingConfig.slots={self.slots} exceeds the {self.grid**2} image tokens")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CrossAttention(nn.Module):
    """softmax(q kᵀ / √d) v with queries from x, keys and values from ctx; ``ctx_mask`` True = attend."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        h, d = self.heads, c // self.heads
        q = self.q(x).view(b, n, h, d).transpose(1, 2)                          # (B, h, n, d)
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, h, d).permute(2, 0, 3, 1, 4)  # each (B, h, m, d)
        mask = None if ctx_mask is None else ctx_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


def _mlp(dim: int, ratio: float, out: int | None = None) -> nn.Sequential:
    hidden = int(dim * ratio)
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out or dim))


class FusionLayer(nn.Module):
    """Grounding DINO's feature enhancer, pre-norm: image self-attention, image↔text cross-attention, MLPs."""

    def __init__(self, dim: int, heads: int, ratio: float) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(6))
        self.self_attn = Attention(dim, heads)
        self.img_to_text = CrossAttention(dim, heads)
        self.text_to_img = CrossAttention(dim, heads)
        self.img_mlp, self.text_mlp = _mlp(dim, ratio), _mlp(dim, ratio)

    def forward(self, img: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.norms
        img = img + self.self_attn(n[0](img))[0]
        img = img + self.img_to_text(n[1](img), n[2](text), text_mask)
        text = text + self.text_to_img(n[3](text), img)
        return img + self.img_mlp(n[4](img)), text + self.text_mlp(n[5](text))


class DecoderLayer(nn.Module):
    """Slot self-attention, cross-attention to the image tokens, then to the text states, MLP (pre-norm)."""

    def __init__(self, dim: int, heads: int, ratio: float) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(4))
        self.self_attn = Attention(dim, heads)
        self.to_img = CrossAttention(dim, heads)
        self.to_text = CrossAttention(dim, heads)
        self.mlp = _mlp(dim, ratio)

    def forward(self, q: torch.Tensor, img: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        n = self.norms
        q = q + self.self_attn(n[0](q))[0]
        q = q + self.to_img(n[1](q), img)
        q = q + self.to_text(n[2](q), text, text_mask)
        return q + self.mlp(n[3](q))


class MatchHead(nn.Module):
    """Text-match logit: (W x) · s / √D plus a learnt bias, s the query's sentence state — its last real token,
    which in a causal text tower (CLIP's) has read the whole query. Grounding DINO scores each token and
    takes the largest; with a causal tower, "red" in "a red 7" has not read the 7 yet, so a red 3 would
    match "a red 7" through it: the one state that has read every word binds colour and digit."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.bias = nn.Parameter(torch.tensor(-2.0))  # starts at p ≈ 0.12: most slots answer nothing

    def forward(self, x: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        last = (text_mask.sum(1) - 1).clamp(min=0)                       # (B,) index of the last real token
        sentence = text[torch.arange(len(text)), last]                   # (B, D)
        return (self.proj(x) @ sentence[:, :, None]).squeeze(-1) / math.sqrt(x.shape[-1]) + self.bias  # (B, P)


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """(grid², dim) fixed position code of each token's (x, y) cell centre (dim / 4 frequencies per axis and function)."""
    c = (torch.arange(grid) + 0.5) / grid
    y, x = torch.meshgrid(c, c, indexing="ij")
    freq = 2 * math.pi * 2.0 ** torch.arange(dim // 4)
    parts = [f(a.flatten()[:, None] * freq) for a in (x, y) for f in (torch.sin, torch.cos)]
    return torch.cat(parts, dim=1)


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


class GroundingDetector(nn.Module):
    def __init__(self, config: GroundingConfig) -> None:
        super().__init__()
        self.config = cfg = config
        self.img_in = nn.Linear(cfg.image_dim, cfg.dim)
        self.text_in = nn.Linear(cfg.text_dim, cfg.dim)
        self.register_buffer("pos", sincos_2d(cfg.grid, cfg.dim), persistent=False)  # (N, dim)
        c = (torch.arange(cfg.grid) + 0.5) / cfg.grid
        y, x = torch.meshgrid(c, c, indexing="ij")
        size = torch.full((cfg.grid**2,), cfg.reference_size)
        self.register_buffer("token_boxes", torch.stack([x.flatten(), y.flatten(), size, size], -1), persistent=False)  # (N, 4)
        self.fusion = nn.ModuleList(FusionLayer(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.fusion_layers))
        self.enc_box, self.enc_match = _mlp(cfg.dim, cfg.mlp_ratio, 4), MatchHead(cfg.dim)
        self.box_code = nn.Linear(4, cfg.dim)  # a slot's reference box as a position code
        self.decoder = nn.ModuleList(DecoderLayer(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.decoder_layers))
        self.dec_norm = nn.LayerNorm(cfg.dim)
        self.dec_box, self.dec_match = _mlp(cfg.dim, cfg.mlp_ratio, 4), MatchHead(cfg.dim)
        for head in (self.enc_box, self.dec_box):  # start at the reference boxes
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)

    def forward(self, image_tokens: torch.Tensor, text_states: torch.Tensor, text_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """image_tokens (B, N, D_img), text_states (B, L, D_txt), text_mask (B, L) True at real tokens ->
        ``boxes`` (B, Q, 4) and ``logits`` (B, Q) of the slots, ``enc_boxes`` (B, N, 4) / ``enc_logits`` (B, N) of the tokens."""
        if image_tokens.shape[1] != self.config.grid**2:
            raise ValueError(f"image_tokens has {image_tokens.shape[1]} tokens; the detector was built for grid={self.config.grid} "
                             f"({self.config.grid ** 2} tokens)")
        img = self.img_in(image_tokens) + self.pos
        text = self.text_in(text_states)
        for layer in self.fusion:
            img, text = layer(img, text, text_mask)
        enc_logits = self.enc_match(img, text, text_mask)                                   # (B, N)
        enc_boxes = torch.sigmoid(torch.logit(self.token_boxes) + self.enc_box(img))       # (B, N, 4)
        top = enc_logits.topk(self.config.slots, dim=1).indices                            # (B, Q) query selection
        ref = enc_boxes.gather(1, top[..., None].expand(-1, -1, 4)).detach()               # (B, Q, 4)
        q = img.gather(1, top[..., None].expand(-1, -1, img.shape[-1])) + self.box_code(ref)
        for layer in self.decoder:
            q = layer(q, img, text, text_mask)
        q = self.dec_norm(q)
        boxes = torch.sigmoid(torch.logit(ref.clamp(1e-4, 1 - 1e-4)) + self.dec_box(q))
        return {"boxes": boxes, "logits": self.dec_match(q, text, text_mask), "enc_boxes": enc_boxes, "enc_logits": enc_logits}
