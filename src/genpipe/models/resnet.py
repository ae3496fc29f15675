"""ResNet-(6n+2) for 28x28 images (He et al. 2016, the CIFAR variant taught in the course).

conv3x3(w) -> norm -> ReLU -> 3 stages of n basic blocks with w, 2w, 4w filters (stride 2 at the
start of stages 2 and 3) -> global average pool (the features) -> linear classifier.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genpipe.models.norms import make_norm


@dataclass(frozen=True)
class ResNetConfig:
    depth_n: int = 1
    width: int = 16
    norm: str = "bn"
    gn_groups: int = 8
    in_channels: int = 1
    num_classes: int = 10

    @property
    def depth(self) -> int:
        return 6 * self.depth_n + 2

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class StridedPointwise(nn.Conv2d):
    """A 1x1 convolution with stride s, computed as subsample-by-s then a stride-1 1x1 convolution.

    The same function and parameters as ``nn.Conv2d(c_in, c_out, 1, s)``; it avoids oneDNN's AVX2
    1x1 stride-2 backward-weights kernel, which corrupts memory for few channels (4 -> 8) in
    channels_last on CPUs without AVX-512 (hangs or segfaults; see tests/unit/test_resnet.py).
    """

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__(c_in, c_out, 1, 1, bias=False)
        self.step = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x[:, :, :: self.step, :: self.step])


class BasicBlock(nn.Module):
    """conv-norm-ReLU-conv-norm plus a shortcut (1x1 conv + norm when the shape changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int, cfg: ResNetConfig) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = make_norm(cfg.norm, c_out, cfg.gn_groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = make_norm(cfg.norm, c_out, cfg.gn_groups)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(StridedPointwise(c_in, c_out, stride), make_norm(cfg.norm, c_out, cfg.gn_groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, cfg: ResNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.stem = nn.Sequential(nn.Conv2d(cfg.in_channels, w, 3, 1, 1, bias=False), make_norm(cfg.norm, w, cfg.gn_groups), nn.ReLU())
        stages, c_in = [], w
        for i, c_out in enumerate((w, 2 * w, 4 * w)):
            blocks = [BasicBlock(c_in if j == 0 else c_out, c_out, 2 if (i > 0 and j == 0) else 1, cfg) for j in range(cfg.depth_n)]
            stages.append(nn.Sequential(*blocks))
            c_in = c_out
        self.stages = nn.Sequential(*stages)  # (B, 4w, H/4, W/4): Grad-CAM's target is stages[-1]
        self.fc = nn.Linear(4 * w, cfg.num_classes)
        self._init()

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Zero-init the last norm's scale of each block: every block starts as the identity.
        for block in self.modules():
            if isinstance(block, BasicBlock) and hasattr(block.norm2, "weight"):
                nn.init.zeros_(block.norm2.weight)

    @property
    def feature_dim(self) -> int:
        return self.fc.in_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (B, 4w): the global-average-pooled last stage."""
        return self.stages(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))  # (B, num_classes) logits
