"""The scene-parser network: an anchor-free, fully-convolutional detector (CenterNet / FCOS style).

The backbone sees only the ink intensity ``I = max(R, G, B)`` (a pixel is intensity x colour with
0/1 components, so ``I`` is exact), which makes the centre, digit and box predictions
colour-invariant by construction: a (digit, colour) pair never seen in training (make_scenes'
held-out pairs) is no harder than any other. (With RGB input the digit head learnt the pairs'
absence: 88 % digit accuracy on held-out-pair objects against 98 % on the others.) Only the colour
head also reads the colours, average-pooled to the 16x16 grid:

    stem   conv3x3/2 (1 -> w/2)         # (B, w/2, 32, 32)   receptive field  3 px
           conv3x3/2 (w/2 -> w)         # (B, w, 16, 16)                      7 px
    body   conv3x3 dilation d_i, i=1..k # (B, w, 16, 16)     + 8 d_i px each
    heads  conv3x3 -> SiLU -> conv1x1   # per cell: 1 centre logit, 10 digit, 4 box
    colour [h, avgpool4(RGB)] -> conv3x3 -> SiLU -> conv3x3 dilation 2 -> SiLU -> conv1x1 -> 7

Each backbone conv is followed by a norm (BatchNorm or GroupNorm) and SiLU; body convs are residual. With
the default dilations (1, 2, 4, 1) the centre cell sees 7 + 8 (1 + 2 + 4 + 1) + 8 (head) = 79 px,
more than the whole 32 px digit, so the digit head reads the entire digit at its centre cell.

Outputs per cell (i, j), whose centre is the pixel point ((j + 0.5) s, (i + 0.5) s), s = 4:
``heat`` the logit that an object's box centre falls in the cell, ``digit`` and ``colour`` logits,
``box`` the FCOS distances (l, t, r, b) from the cell centre to the box edges, in units of s,
predicted as softplus so that they are positive. Nothing depends on the 2x2 layout of the training
scenes: the network is translation-equivariant up to the border padding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

N_DIGITS = 10
N_COLOURS = 7
STRIDE = 4


@dataclass(frozen=True)
class ParserConfig:
    width: int = 32  # channels of the 16x16 feature map (the stem has width // 2)
    dilations: tuple[int, ...] = (1, 2, 4, 1)  # one residual 3x3 conv per entry at stride 4
    head_width: int = 32
    norm: str = "bn"  # bn | gn
    gn_groups: int = 8

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> "ParserConfig":
        d = dict(d)
        d["dilations"] = tuple(d["dilations"])  # type: ignore[arg-type]
        return cls(**d)  # type: ignore[arg-type]


def _norm(kind: str, c: int, groups: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(c)
    if kind == "gn":
        return nn.GroupNorm(min(groups, c), c)
    raise ValueError(f"norm must be bn or gn, not {kind!r}")


class ConvNormAct(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, cfg: ParserConfig, stride: int = 1, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False),
            _norm(cfg.norm, c_out, cfg.gn_groups),
            nn.SiLU(),
        )


class Residual(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class Head(nn.Sequential):
    """conv3x3 -> SiLU -> conv1x1 to ``c_out`` channels (bias on, so priors can be set)."""

    def __init__(self, c_in: int, hidden: int, c_out: int) -> None:
        super().__init__(nn.Conv2d(c_in, hidden, 3, 1, 1), nn.SiLU(), nn.Conv2d(hidden, c_out, 1))


class SceneParser(nn.Module):
    """Fully-convolutional detector; ``forward`` returns a dict of per-cell maps (B, C, 16, 16)."""

    def __init__(self, cfg: ParserConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.stem = nn.Sequential(ConvNormAct(1, w // 2, cfg, stride=2), ConvNormAct(w // 2, w, cfg, stride=2))
        self.body = nn.Sequential(*(Residual(ConvNormAct(w, w, cfg, dilation=d)) for d in cfg.dilations))
        self.heat = Head(w, cfg.head_width, 1)
        self.digit = Head(w, cfg.head_width, N_DIGITS)
        self.box = Head(w, cfg.head_width, 4)
        hw = cfg.head_width
        self.colour = nn.Sequential(
            nn.Conv2d(w + 3, hw, 3, 1, 1), nn.SiLU(), nn.Conv2d(hw, hw, 3, 1, 2, dilation=2), nn.SiLU(), nn.Conv2d(hw, N_COLOURS, 1)
        )
        # CenterNet's prior: the centre heatmap starts near p = 0.01 so the focal loss is not swamped
        nn.init.constant_(self.heat[-1].bias, -4.6)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, 3, 64, 64) float in [0, 1]."""
        h = self.body(self.stem(x.amax(dim=1, keepdim=True)))  # (B, w, H/4, W/4) from the intensity only
        rgb = F.avg_pool2d(x, STRIDE)  # (B, 3, H/4, W/4)
        return {
            "heat": self.heat(h)[:, 0],  # (B, H/4, W/4) logits
            "digit": self.digit(h),  # (B, 10, H/4, W/4)
            "colour": self.colour(torch.cat([h, rgb.to(h.dtype)], dim=1)),  # (B, 7, H/4, W/4)
            "box": F.softplus(self.box(h)),  # (B, 4, H/4, W/4) l, t, r, b in units of STRIDE
        }


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [0, 1], channels_last memory."""
    return images.permute(0, 3, 1, 2).float().div(255.0).contiguous(memory_format=torch.channels_last)
