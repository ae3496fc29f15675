"""DINO's multi-crop augmentation on batches of tensors: 2 global crops and ``local_crops`` small ones.

Each crop is a random resized crop (area a share ``scale`` of the image, aspect ratio in ``ratio``,
as torchvision's ``RandomResizedCrop``) with a random horizontal flip, done for the whole batch at
once by one affine ``grid_sample`` (bilinear; every image its own box), then a brightness/contrast
jitter. All randomness comes from the ``torch.Generator`` passed in, so a seed fixes every crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CropConfig:
    global_size: int = 28
    local_size: int = 12
    local_crops: int = 6
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.1, 0.4)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    jitter: float = 0.4  # brightness and contrast factors drawn from [1 − jitter, 1 + jitter]

    def __post_init__(self) -> None:
        for key in ("global_scale", "local_scale"):
            lo, hi = getattr(self, key)
            if not (0.0 < lo <= hi <= 1.0):
                raise ValueError(f"dino crops.{key} must satisfy 0 < min <= max <= 1 (a share of the image's area), got {[lo, hi]}")
        if not (0.0 < self.ratio[0] <= self.ratio[1]):
            raise ValueError(f"dino crops.ratio must satisfy 0 < min <= max, got {list(self.ratio)}")
        if self.local_crops < 0 or self.global_size < 1 or self.local_size < 1:
            raise ValueError(f"dino crops: local_crops must be >= 0 and sizes >= 1, got {self.local_crops}, "
                             f"{self.global_size}, {self.local_size}")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"dino crops.jitter must be in [0, 1), got {self.jitter}")


def random_resized_crop(x: torch.Tensor, size: int, scale: tuple[float, float], ratio: tuple[float, float],
                        flip: bool, gen: torch.Generator) -> torch.Tensor:
    """(B, C, H, W) in [0, 1] -> (B, C, size, size): one random box per image, resized bilinearly."""
    b = x.shape[0]
    u = torch.rand(b, 5, generator=gen)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1]
    aspect = torch.exp(log_r)
    w = torch.sqrt(area * aspect).clamp(max=1.0)  # box width and height as shares of the image's
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (u[:, 2] * (1 - w) + w / 2) * 2 - 1  # box centre in [-1, 1], the box inside the image
    cy = (u[:, 3] * (1 - h) + h / 2) * 2 - 1
    sx = torch.where(u[:, 4] < 0.5, -w, w) if flip else w  # a negative x scale mirrors the crop
    theta = torch.zeros(b, 2, 3, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = sx, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta.to(x.device), [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def jitter(x: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """Random brightness and contrast per image, clamped to [0, 1]."""
    if strength == 0:
        return x
    b = x.shape[0]
    f = 1 + strength * (2 * torch.rand(b, 2, 1, 1, 1, generator=gen) - 1)
    f = f.to(x.device, x.dtype)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x * f[:, 0] - mean) * f[:, 1] + mean).clamp(0, 1)


def multi_crop(x: torch.Tensor, cfg: CropConfig, gen: torch.Generator) -> list[torch.Tensor]:
    """[global 1, global 2, local 1, …, local n]: the teacher reads the first two, the student all."""
    crops = [random_resized_crop(x, cfg.global_size, cfg.global_scale, cfg.ratio, cfg.flip, gen) for _ in range(2)]
    crops += [random_resized_crop(x, cfg.local_size, cfg.local_scale, cfg.ratio, cfg.flip, gen) for _ in range(cfg.local_crops)]
    return [jitter(c, cfg.jitter, gen) for c in crops]
