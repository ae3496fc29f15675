"""The frozen encoders of grounded detection: an image ViT's patch tokens and CLIP's per-token text states.

Backbones (the ablation, all of DINO's scene ViT's shape, frozen): ``dino`` — the teacher of
``train_dino/scenes``; ``random`` — a ViT of that shape at DINO's initialisation (``dino.seed``, the
student before its first step); ``supervised`` — that same initialisation trained here on the train
scenes' labels: which of the 70 (digit, colour) pairs a scene holds (multi-label BCE on the class
token), the scenes' analogue of an ImageNet-supervised ViT.

Text: token embedding + positional embedding -> causal transformer -> ``ln_final`` of the CLIP text
tower of ``train_clip`` (open_clip's ``encode_text`` before its pooling and projection).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from genpipe.classify.train import param_groups
from genpipe.classify.vit_stage import lr_lambda
from genpipe.clip.model import load as load_clip, tokenize
from genpipe.dino.stages import load_backbone, scene_tensor
from genpipe.models.vit import ViT, ViTConfig
from genpipe.scenes.dataset import COLOUR_NAMES, Scenes

BACKBONES = ("dino", "random", "supervised")
SCENE_INPUT = {"image_size": 64, "in_channels": 3}  # what a scene backbone must take


def random_like(config: dict[str, Any], seed: int) -> ViT:
    """A ViT of ``config``'s shape as DinoTrainer initialises it (``torch.manual_seed(seed)`` first)."""
    torch.manual_seed(seed)
    return ViT(ViTConfig(**{k: v for k, v in config.items() if k in ViTConfig.__dataclass_fields__})).eval()


def pair_labels(scenes: Scenes) -> torch.Tensor:
    """(N, 70) multi-hot: scene i holds an object of digit d and colour c at column d * 7 + c."""
    y = np.zeros((len(scenes), 10 * len(COLOUR_NAMES)), np.float32)
    rows, slots = np.nonzero(scenes.digits >= 0)
    y[rows, scenes.digits[rows, slots] * len(COLOUR_NAMES) + scenes.colours[rows, slots]] = 1.0
    return torch.from_numpy(y)


def train_supervised(model: ViT, scenes: Scenes, p: dict[str, Any], seed: int) -> list[dict[str, float]]:
    """Train ``model`` (class token -> linear -> 70 pair logits, BCE) on ``scenes``; returns its curve."""
    x, y = scene_tensor(scenes.images), pair_labels(scenes)
    head = torch.nn.Linear(model.config.dim, y.shape[1])
    params = param_groups(model, p["weight_decay"]) + param_groups(head, p["weight_decay"])
    opt = torch.optim.AdamW(params, lr=p["lr"])
    steps = p["epochs"] * math.ceil(len(x) / p["batch_size"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(min(100, steps // 10 + 1), steps))
    model.train()
    rows, step = [], 0
    bar = tqdm(total=steps, desc="supervised scene ViT", unit="step", mininterval=5.0)
    for epoch in range(p["epochs"]):
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        for start in range(0, len(x), p["batch_size"]):
            idx = perm[start : start + p["batch_size"]]
            logits = head(model(x[idx]))
            loss = F.binary_cross_entropy_with_logits(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            bar.update()
            if step % 50 == 0 or step == steps:
                exact = ((logits > 0) == (y[idx] > 0.5)).all(1).float().mean().item()
                rows.append({"step": step, "loss": round(loss.item(), 6), "exact_match": round(exact, 6)})
                bar.set_postfix(loss=f"{loss.item():.3f}", exact=f"{exact:.2f}", refresh=False)
    bar.close()
    return rows


def build_backbone(kind: str, dino_dir: Path, dino_seed: int, scenes: Scenes | None = None,
                   supervised: dict[str, Any] | None = None) -> tuple[ViT, dict[str, Any], list[dict[str, float]]]:
    """The frozen backbone of an ablation row (eval mode, no gradients), its config and, for
    ``supervised``, its training curve. A DINO checkpoint that does not take 64 x 64 RGB scenes stops
    naming the keys (io.ConfigMismatchError)."""
    dino, config = load_backbone(dino_dir, SCENE_INPUT)
    rows: list[dict[str, float]] = []
    if kind == "dino":
        model = dino
    elif kind in ("random", "supervised"):
        model = random_like(config, dino_seed)
        if kind == "supervised":
            if scenes is None or supervised is None:
                raise ValueError("the supervised backbone needs the train scenes and grounding.supervised")
            print(f"train_grounding: training the supervised scene ViT on {len(scenes):,} scenes", file=sys.stderr)
            rows = train_supervised(model, scenes, supervised, dino_seed)
    else:
        raise ValueError(f"unknown backbone {kind!r} (known: {', '.join(BACKBONES)})")
    model.eval().requires_grad_(False)
    shape = {k: config[k] for k in ("image_size", "patch_size", "in_channels", "dim", "depth", "heads", "mlp_ratio")}
    return model, {**shape, "backbone": kind}, rows


@torch.inference_mode()
def image_tokens(model: ViT, images: np.ndarray, batch_size: int = 500, desc: str = "image tokens") -> torch.Tensor:
    """(N, grid², D) last-layer patch tokens of uint8 scenes (N, 64, 64, 3)."""
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", mininterval=5.0):
        out.append(model.forward_features(scene_tensor(images[start : start + batch_size])).patch_tokens)
    return torch.cat(out)


class TextTower:
    """CLIP's text transformer, frozen: texts -> per-token states (B, L, width) and a mask of real tokens."""

    def __init__(self, clip_dir: Path) -> None:
        model, cfg = load_clip(clip_dir)
        self.model = model.requires_grad_(False)
        self.context_length = cfg["text_cfg"]["context_length"]
        self.width = cfg["text_cfg"]["width"]

    @torch.inference_mode()
    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        tokens = tokenize(texts, self.context_length)  # (B, L), 0 = padding
        x = m.token_embedding(tokens) + m.positional_embedding
        x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask))
        return x.clone(), tokens != 0
