"""The training loop the trainers share: steps with a progress bar, EMA, checkpoint/resume, NaN stop, curves.

A trainer (:class:`Steppable`) says what one step does and what its state is; :func:`run` does the
rest with as little host work per step as the guarantees allow, so that a GPU is not kept waiting:

- the loss stays on the device (:class:`LossWindow`): it is read back (one sync) only at a log
  point, where the curves row is written, and before a checkpoint; a non-finite loss then stops the
  run naming the step where it *first* occurred, before anything is saved, so the last checkpoint on
  disk is the last good one (the steps after the bad one ran on NaN weights and are thrown away);
- the EMA (:class:`EMA`) is one ``torch._foreach_lerp_`` over lists built once, with the step count
  kept on the host: ``AveragedModel.update_parameters`` walks the modules, detaches and groups every
  tensor and tests its device-side counter (two syncs on a GPU) on every step;
- the checkpoint (:mod:`genpipe.pipeline.checkpoint`) holds the trainer's full state, keyed by its
  params (:func:`resume`), so a rerun continues where a killed one stopped, byte for byte on a CPU.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from genpipe.pipeline.checkpoint import load_state, save_state


class Steppable(Protocol):
    """What :func:`run` drives: ``step`` (steps done), ``rows`` (curves so far), one training step
    (returning its loss, left on the device), a curves row, and the state a checkpoint holds."""

    step: int
    rows: list[dict[str, Any]]

    def train_step(self) -> torch.Tensor: ...

    def row(self, mean_loss: float) -> dict[str, Any]: ...

    def state(self) -> dict[str, Any]: ...


def adamw(params: Iterable[Any], device: torch.device, **options: Any) -> torch.optim.AdamW:
    """AdamW, fused (one kernel for every tensor) on CUDA. On a CPU the per-tensor loop stays: the
    fused CPU kernel is ~5x faster on the optimizer step but rounds differently (weights 2e-5 apart
    after 30 steps), and the CPU default's outputs are kept byte for byte (docs/ddpm.md)."""
    return torch.optim.AdamW(params, fused=device.type == "cuda", **options)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device``: unchanged on a CPU; on a GPU copied from pinned memory without
    making the host wait for it."""
    return t if device.type == "cpu" else t.pin_memory().to(device, non_blocking=True)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


class EMA:
    """Exponential moving average of a model's parameters *and* buffers (what is sampled), in an
    ``AveragedModel`` (``use_buffers``, ``get_ema_multi_avg_fn``) whose state dict it keeps, updated
    as that one is — a copy at the first update, then ``ema.lerp_(model, 1 - decay)`` — in bytes."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.decay = decay
        self._updates = 0  # n_averaged, on the host: no device read per step
        self._pairs: tuple[list[torch.Tensor], list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]] | None = None
        self._source: torch.nn.Module | None = None

    @property
    def module(self) -> torch.nn.Module:
        return self.averaged.module

    def _lists(self, model: torch.nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
        """(EMA floats, model floats, other pairs), the tensors themselves (a later ``.to()`` of
        the model swaps their data in place, which the lists follow)."""
        if self._pairs is None or self._source is not model:
            mine = [*self.module.parameters(), *self.module.buffers()]
            theirs = [*model.parameters(), *model.buffers()]
            if len(mine) != len(theirs):
                raise ValueError(f"EMA of a model with {len(mine)} tensors updated from one with {len(theirs)}")
            floats = [(a, b) for a, b in zip(mine, theirs) if a.is_floating_point()]
            self._pairs = ([a for a, _ in floats], [b for _, b in floats], [(a, b) for a, b in zip(mine, theirs) if not a.is_floating_point()])
            self._source = model
        return self._pairs

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        ema, cur, other = self._lists(model)
        if self._updates == 0:
            torch._foreach_copy_(ema, cur)
            for a, b in other:
                a.copy_(b)
        else:
            torch._foreach_lerp_(ema, cur, 1 - self.decay)
            for a, b in other:  # as get_ema_multi_avg_fn does for integer tensors
                a.copy_(a * self.decay + b * (1 - self.decay))
        self._updates += 1
        self.averaged.n_averaged.fill_(self._updates)

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)
        self._updates = int(self.averaged.n_averaged)


class LossWindow:
    """The losses of the steps since the last log point, on the device until read (one sync)."""

    def __init__(self, first_step: int) -> None:
        self.first_step = first_step  # the step (0-based) of the window's first loss
        self._pending: list[torch.Tensor] = []
        self._values: list[float] = []

    def add(self, loss: torch.Tensor) -> None:
        self._pending.append(loss.detach())

    def values(self) -> list[float]:
        if self._pending:
            self._values += torch.stack(self._pending).tolist()
            self._pending = []
        return self._values

    def first_bad(self) -> tuple[int, float] | None:
        """(step, loss) of the first non-finite loss in the window, if any."""
        for i, v in enumerate(self.values()):
            if v != v or v in (float("inf"), float("-inf")):
                return self.first_step + i, v
        return None

    def mean(self) -> float:
        v = self.values()
        return sum(v) / len(v)

    def clear(self, first_step: int) -> None:
        self.first_step, self._pending, self._values = first_step, [], []


def resume(checkpoint: Path, key: str) -> dict[str, Any] | None:
    """The checkpoint's state if it was written with params ``key`` (else None, saying why on stderr).
    Plain tensors only: a pickled payload or a corrupt file raises ``CheckpointError``."""
    if not checkpoint.exists():
        return None
    ck = load_state(checkpoint)
    if ck.get("key") != key:
        print(f"ignoring {checkpoint}: written with other params ({ck.get('key')} != {key})", file=sys.stderr)
        return None
    print(f"resuming from {checkpoint} at step {ck['step']}", file=sys.stderr)
    return ck


def run(trainer: Steppable, total: int, log_every: int, checkpoint_every: int, checkpoint: Path, name: str,
        nan_hint: str = "", on_step: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Step ``trainer`` to ``total`` steps: a curves row every ``log_every`` steps (and at the end),
    the state saved every ``checkpoint_every`` steps (and at the end). A non-finite loss stops the
    run with a ``FloatingPointError`` naming its step, before any checkpoint holding its weights."""
    bar = tqdm(total=total, initial=trainer.step, desc=name, unit="step", mininterval=2.0)
    window = LossWindow(trainer.step)
    while trainer.step < total:
        window.add(trainer.train_step())
        trainer.step += 1
        log = trainer.step % log_every == 0 or trainer.step == total
        save = trainer.step % checkpoint_every == 0 or trainer.step == total
        if (log or save) and (bad := window.first_bad()):
            bar.close()
            raise FloatingPointError(f"{name}: loss is {bad[1]} at step {bad[0]}; the last good checkpoint {checkpoint} "
                                     f"is kept{nan_hint}")
        if log:
            mean = window.mean()
            trainer.rows.append(trainer.row(mean))
            window.clear(trainer.step)
            bar.set_postfix(loss=f"{mean:.4f}", refresh=False)
        if save:
            save_state(checkpoint, trainer.state())
        bar.update(1)
        if on_step:
            on_step(trainer.step)
    bar.close()
    return trainer.rows
