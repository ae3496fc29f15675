"""Deterministic classifier training and evaluation on in-memory image tensors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from genpipe.classify.metrics import classification_metrics


def to_input(x_uint8: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 (N, H, W) -> normalised float (N, 1, H, W) in channels_last memory format."""
    x = (x_uint8.float().div(255.0) - mean) / std
    return x.unsqueeze(1).contiguous(memory_format=torch.channels_last)


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    seed: int


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """Weight decay on conv/linear weights only, not on norm parameters, gates or biases."""
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _clip_gates(model: nn.Module) -> None:
    for m in model.modules():
        if hasattr(m, "clip_gate_"):
            m.clip_gate_()


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits (N, classes) of ``model`` in eval mode."""
    model.eval()
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def scores(logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> tuple[float, dict[str, float]]:
    """Cross-entropy and classification metrics of precomputed logits."""
    return F.cross_entropy(logits, y).item(), classification_metrics(logits.argmax(1), y, num_classes)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> tuple[float, dict[str, float]]:
    return scores(predict(model, x), y, num_classes)


def train_classifier(
    model: nn.Module,
    cfg: TrainConfig,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    num_classes: int,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """SGD (Nesterov) with a one-cycle schedule; returns one row of curves per epoch.

    Batches are drawn from a permutation seeded by ``cfg.seed`` and the epoch, so the batch order
    does not depend on anything but the params.
    """
    x, y = train
    n = len(x)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    opt = torch.optim.SGD(param_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.25)
    rows = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
        loss_sum, correct = 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", mininterval=2.0, leave=True)
        for step in bar:
            idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            xb, yb = x[idx], y[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}, step {step}; lower train_classifier lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            _clip_gates(model)
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{sched.get_last_lr()[0]:.3g}", refresh=False)
        val_loss, val_m = evaluate(model, *val, num_classes)
        row = {
            "epoch": epoch,
            "train_loss": round(loss_sum / n, 6),
            "train_accuracy": round(correct / n, 6),
            "val_loss": round(val_loss, 6),
            "val_accuracy": round(val_m["accuracy"], 6),
        }
        rows.append(row)
        if on_epoch:
            on_epoch(row)
    return rows
