"""DINO (Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers"), written out.

Self-distillation with no labels: a student and a teacher network of the same shape see different
crops of one image; the student learns to predict the teacher's output distribution over K
prototypes. Nothing but the teacher's two tricks keeps the pair from collapsing to a constant:

    teacher  = EMA of the student, momentum on a cosine schedule from ``momentum`` to 1
    P_t(x)   = softmax((g_t(x) − c) / τ_t)         centering c (running mean of the teacher's
                                                     outputs) stops one prototype from winning;
                                                     a low τ_t (sharpening) stops the uniform answer
    P_s(x)   = softmax(g_s(x) / τ_s)
    loss     = mean over pairs (global crop u of the teacher, any other crop v of the student)
               of  − Σ_k P_t(u)_k · log P_s(v)_k

The teacher sees only the 2 global crops; the student sees those and the small local crops
(multi-crop, genpipe.dino.crops), so it learns local-to-global correspondence. Schedules follow the
paper's code (``main_dino.py``): τ_t warms up linearly, the learning rate and the EMA momentum
follow cosines. Collapse shows in the teacher's entropy: log K (uniform) or 0 (one prototype).
"""

from __future__ import annotations

import copy
import math
import torch
import torch.nn.functional as F
from torch import nn


class DINOHead(nn.Module):
    """Projection head: MLP (in → hidden → hidden → bottleneck), L2-normalised, then a weight-normalised
    linear layer onto ``out_dim`` prototypes: logit k = g_k · z · v_k / ||v_k||. With ``norm_last_layer``
    the gains g stay 1 (the paper's choice for ViT-B, more stable); without, they are learnt (its choice
    for ViT-S: "better performance but can make the training unstable")."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 256, bottleneck_dim: int = 64, layers: int = 3,
                 norm_last_layer: bool = True) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"DINOHead layers must be >= 1, got {layers}")
        dims = [in_dim] + [hidden_dim] * (layers - 1) + [bottleneck_dim]
        mlp: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims, dims[1:])):
            mlp.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                mlp.append(nn.GELU())
        self.mlp = nn.Sequential(*mlp)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        # weight normalisation written out: prototypes v_k / ||v_k||, no learnt gain
        self.prototypes = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        nn.init.trunc_normal_(self.prototypes, std=0.02)
        self.gain = nn.Parameter(torch.ones(out_dim), requires_grad=not norm_last_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.mlp(x), dim=-1)
        return (z @ F.normalize(self.prototypes, dim=-1).t()) * self.gain


class DINOLoss(nn.Module):
    """The cross-entropy between the centred, sharpened teacher and the student, and the centre's update."""

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9) -> None:
        super().__init__()
        if not 0.0 <= center_momentum < 1.0:
            raise ValueError(f"dino center_momentum must be in [0, 1), got {center_momentum}")
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def teacher_probs(self, teacher_out: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        return torch.softmax((teacher_out - self.center) / teacher_temp, dim=-1)

    def forward(self, student_out: list[torch.Tensor], teacher_out: list[torch.Tensor], teacher_temp: float) -> torch.Tensor:
        """``student_out``: one (B, K) tensor per crop, the global crops first (in the teacher's order);
        ``teacher_out``: one (B, K) per global crop. Updates the centre (no gradient) after computing the loss."""
        targets = [self.teacher_probs(t, teacher_temp).detach() for t in teacher_out]
        logp = [F.log_softmax(s / self.student_temp, dim=-1) for s in student_out]
        total, pairs = student_out[0].new_zeros(()), 0
        for iq, q in enumerate(targets):
            for v, lp in enumerate(logp):
                if v == iq:  # the same view for both: nothing to predict
                    continue
                total = total + torch.sum(-q * lp, dim=-1).mean()
                pairs += 1
        if pairs == 0:
            raise ValueError("DINO loss needs at least two crops")
        self.update_center(teacher_out)
        return total / pairs

    @torch.no_grad()
    def update_center(self, teacher_out: list[torch.Tensor]) -> None:
        batch_center = torch.cat(teacher_out).mean(dim=0, keepdim=True)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1.0 - self.center_momentum)


def teacher_entropy(probs: torch.Tensor) -> tuple[float, float]:
    """(mean entropy of the teacher's distributions in nats, KL of their mean to uniform): both near
    0 / log K when the teacher collapses to one prototype / to the uniform answer."""
    p = probs.float().clamp_min(1e-12)
    entropy = float(-(p * p.log()).sum(-1).mean())
    mean = p.mean(0)
    kl_uniform = float((mean * (mean.log() + math.log(p.shape[-1]))).sum())
    return entropy, kl_uniform


def cosine_schedule(start: float, end: float, step: int, total: int) -> float:
    """``start`` at step 0 to ``end`` at ``total`` along half a cosine (the paper's lr and momentum schedules)."""
    if total <= 0:
        return end
    s = min(max(step, 0), total)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * s / total))


def teacher_temperature(step: int, warmup_steps: int, warmup_temp: float, temp: float) -> float:
    """Linear warm-up of τ_t from ``warmup_temp`` to ``temp`` over ``warmup_steps``, then constant."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return temp
    return warmup_temp + (temp - warmup_temp) * step / warmup_steps


class StudentTeacher(nn.Module):
    """Backbone + head for the student and, as a frozen deep copy, for the teacher."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.student = nn.ModuleDict({"backbone": backbone, "head": head})
        self.teacher = copy.deepcopy(self.student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    @staticmethod
    def _run(net: nn.ModuleDict, crops: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each crop size once through the backbone (crops of one size share a batch, as in the paper)."""
        outs: list[torch.Tensor] = []
        i = 0
        while i < len(crops):
            j = i
            while j < len(crops) and crops[j].shape[-2:] == crops[i].shape[-2:]:
                j += 1
            feats = net["backbone"](torch.cat(crops[i:j]))
            outs.extend(net["head"](feats).chunk(j - i))
            i = j
        return outs

    def student_outputs(self, crops: list[torch.Tensor]) -> list[torch.Tensor]:
        return self._run(self.student, crops)

    @torch.no_grad()
    def teacher_outputs(self, global_crops: list[torch.Tensor]) -> list[torch.Tensor]:
        return self._run(self.teacher, global_crops)

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """teacher ← m · teacher + (1 − m) · student, every parameter (one multi-tensor op)."""
        t = [p for p in self.teacher.parameters()]
        s = [p.detach() for p in self.student.parameters()]
        torch._foreach_lerp_(t, s, 1.0 - momentum)

