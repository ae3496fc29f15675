"""DINO training on unlabelled images: one step of the method (genpipe.dino.method) per batch, the loop,
checkpoints and NaN stop from genpipe.pipeline.trainloop.

Per step: a batch of images → multi-crop (2 global + ``local_crops`` local, seeded) → the teacher on
the global crops, the student on all → DINO's loss (centering and sharpening the teacher) → AdamW on
the student (lr: linear warm-up then cosine, weight decay on weights only, gradient clipping) → the
teacher an EMA of the student with momentum on a cosine to 1. A curves row every ``log_every`` steps
holds the loss, the teacher's entropy and the KL of its mean output to uniform (collapse shows as
entropy → 0 with KL → log K, or entropy → log K with KL → 0), the teacher temperature and momentum.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from genpipe.dino.crops import CropConfig, multi_crop
from genpipe.dino.method import (DINOHead, DINOLoss, StudentTeacher, cosine_schedule, teacher_entropy,
                                 teacher_temperature)
from genpipe.models.vit import ViT, ViTConfig
from genpipe.pipeline import trainloop

VIT_KEYS = ("patch_size", "dim", "depth", "heads", "mlp_ratio")
RUN_KEYS = ("patch_size", "local_size", "epochs", "limit")  # what differs between the runs (params.yaml dino.runs)


def run_params(dino: dict[str, Any], run: str) -> dict[str, Any]:
    """One run's params: the shared ``dino`` section with ``dino.runs.<run>`` merged in (the patch size
    into ``vit``), so ``dvc exp run -S dino.local_crops=0`` changes both runs."""
    runs = dino.get("runs", {})
    if run not in runs:
        raise KeyError(f"params.yaml dino.runs has no run {run!r} (known: {sorted(runs)})")
    r = runs[run]
    missing = [k for k in RUN_KEYS if k not in r]
    if missing:
        raise KeyError(f"params.yaml dino.runs.{run} lacks {missing}")
    p = {k: v for k, v in dino.items() if k != "runs"}
    return {**p, **{k: r[k] for k in RUN_KEYS if k != "patch_size"}, "vit": {**p["vit"], "patch_size": r["patch_size"]}}


def backbone(p: dict[str, Any], image_size: int, in_channels: int) -> ViT:
    """The ViT both networks share the shape of: no classification head, its class token is the feature."""
    return ViT(ViTConfig(image_size=image_size, in_channels=in_channels, num_classes=0, **{k: p["vit"][k] for k in VIT_KEYS}))


def crop_config(p: dict[str, Any], image_size: int) -> CropConfig:
    return CropConfig(global_size=image_size, local_size=p["local_size"], local_crops=p["local_crops"],
                      global_scale=tuple(p["global_scale"]), local_scale=tuple(p["local_scale"]), jitter=p["jitter"])


def params_key(p: dict[str, Any]) -> str:
    """What a checkpoint must match to be resumed: every param but how often it is written (the run
    length stays in: the lr and momentum cosines span the whole run)."""
    keep = {k: v for k, v in sorted(p.items()) if k != "checkpoint_every"}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


class DinoTrainer:
    """DINO on images ``x`` (N, C, H, W) in [0, 1]; resumable from ``checkpoint``; a trainloop.Steppable."""

    def __init__(self, p: dict[str, Any], checkpoint: Path, image_size: int, in_channels: int) -> None:
        self.p, self.checkpoint = p, checkpoint
        torch.manual_seed(p["seed"])
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        net = backbone(p, image_size, in_channels)
        h = p["head"]
        head = DINOHead(net.feature_dim, h["out_dim"], h["hidden_dim"], h["bottleneck_dim"], norm_last_layer=h["norm_last_layer"])
        self.nets = StudentTeacher(net, head).to(self.device)
        self.loss_fn = DINOLoss(p["head"]["out_dim"], p["student_temp"], p["center_momentum"]).to(self.device)
        decays = {n: q.ndim > 1 and "pos_embed" not in n and "cls_token" not in n for n, q in self.nets.student.named_parameters()}
        decay = [q for n, q in self.nets.student.named_parameters() if decays[n]]
        plain = [q for n, q in self.nets.student.named_parameters() if not decays[n]]
        self.opt = trainloop.adamw([{"params": decay, "weight_decay": p["weight_decay"]}, {"params": plain, "weight_decay": 0.0}],
                                   self.device, lr=p["lr"])
        self.crops = crop_config(p, image_size)
        self.gen = torch.Generator().manual_seed(p["seed"])
        self.step, self.rows = 0, []
        self.key = params_key(p)
        self.x = torch.empty(0, in_channels, image_size, image_size)
        self.steps_per_epoch, self.total = 1, 1
        self._perm, self._perm_epoch = torch.empty(0, dtype=torch.long), -1
        self._last_teacher: tuple[torch.Tensor, float] | None = None  # the last step's teacher outputs and τ_t

    # -- schedules (per step, as DINO's main_dino.py) --
    def lr_at(self, step: int) -> float:
        warm = self.p["warmup_epochs"] * self.steps_per_epoch
        if step < warm:
            return self.p["lr"] * (step + 1) / warm
        return cosine_schedule(self.p["lr"], self.p["min_lr"], step - warm, max(1, self.total - warm))

    def momentum_at(self, step: int) -> float:
        return cosine_schedule(self.p["momentum"], 1.0, step, self.total)

    def teacher_temp_at(self, step: int) -> float:
        return teacher_temperature(step, self.p["teacher_temp_warmup_epochs"] * self.steps_per_epoch,
                                   self.p["warmup_teacher_temp"], self.p["teacher_temp"])

    # -- trainloop.Steppable --
    def state(self) -> dict[str, Any]:
        return {"key": self.key, "step": self.step, "rows": self.rows, "nets": self.nets.state_dict(),
                "center": self.loss_fn.center.clone(), "opt": self.opt.state_dict(), "gen": self.gen.get_state(),
                "torch_rng": torch.get_rng_state()}

    def try_resume(self) -> bool:
        ck = trainloop.resume(self.checkpoint, self.key)
        if ck is None:
            return False
        self.nets.load_state_dict(ck["nets"])
        self.loss_fn.center.copy_(ck["center"])
        self.opt.load_state_dict(ck["opt"])
        self.gen.set_state(ck["gen"])
        torch.set_rng_state(ck["torch_rng"])
        self.step, self.rows = ck["step"], ck["rows"]
        return True

    def batch(self) -> torch.Tensor:
        """This step's images; each epoch's order comes from (seed, epoch) alone, so a run resumes at any step."""
        epoch, i = divmod(self.step, self.steps_per_epoch)
        if self._perm_epoch != epoch:
            gen = torch.Generator().manual_seed(self.p["seed"] * 100_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(len(self.x), generator=gen).to(self.device), epoch
        bs = self.p["batch_size"]
        return self.x[self._perm[i * bs : (i + 1) * bs]]

    def train_step(self) -> torch.Tensor:
        s = self.step
        trainloop.set_lr(self.opt, self.lr_at(s))
        # crops drawn on the host from the one seeded generator: the same crops on every device
        crops = [trainloop.to_device(c, self.device) for c in multi_crop(self.batch().cpu(), self.crops, self.gen)]
        temp = self.teacher_temp_at(s)
        teacher = self.nets.teacher_outputs(crops[:2])
        loss = self.loss_fn(self.nets.student_outputs(crops), teacher, temp)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.nets.student.parameters(), self.p["grad_clip"])
        self.opt.step()
        self.nets.update_teacher(self.momentum_at(s))
        self._last_teacher = (torch.cat(teacher), temp)  # read at log points only (row)
        return loss.detach()

    def row(self, mean_loss: float) -> dict[str, Any]:
        if self._last_teacher is None:
            entropy, kl = math.nan, math.nan
        else:  # the teacher's sharpened distribution over the prototypes, as it stood at the last step
            out, temp = self._last_teacher
            entropy, kl = teacher_entropy(torch.softmax(out / temp, dim=-1))
        s = self.step - 1
        return {"step": self.step, "epoch": round(self.step / self.steps_per_epoch, 3), "loss": round(mean_loss, 5),
                "teacher_entropy": round(entropy, 5), "kl_uniform": round(kl, 5),
                "teacher_temp": round(self.teacher_temp_at(s), 5), "momentum": round(self.momentum_at(s), 6),
                "lr": round(self.lr_at(s), 8)}

    def fit(self, x: torch.Tensor, name: str = "train_dino", on_step: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
        """Train to ``epochs`` epochs in all (continuing the checkpoint's count)."""
        p = self.p
        self.x = x.to(self.device)
        self.steps_per_epoch = -(-len(x) // p["batch_size"])
        self.total = self.steps_per_epoch * p["epochs"]
        self.try_resume()
        self.nets.train()
        return trainloop.run(self, self.total, p["log_every"], p["checkpoint_every"], self.checkpoint, name,
                             nan_hint=" (lower lr or raise grad_clip)", on_step=on_step)

    def teacher_backbone(self) -> ViT:
        """What DINO evaluates: the teacher's backbone (the paper's k-NN and linear numbers are the teacher's)."""
        return self.nets.teacher["backbone"].eval()
