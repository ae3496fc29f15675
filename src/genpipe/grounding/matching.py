"""DETR's set loss: Hungarian matching of predictions to the objects a query names, then focal + L1 + GIoU.

Matching cost of prediction i and target j (Deformable DETR's):
``w_match · (focal_pos(p_i) - focal_neg(p_i)) + w_l1 · |b_i - t_j|_1 + w_giou · (-GIoU(b_i, t_j))``,
solved per sample by ``scipy.optimize.linear_sum_assignment``. Loss: sigmoid focal loss on every
prediction's match logit (target 1 for the matched ones, 0 for the rest: a query naming nothing the
scene holds makes every prediction a negative), L1 on (cx, cy, w, h) and GIoU (torchvision.ops) on the
matched pairs; each summed and divided by the number of targets in the batch (at least 1).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from genpipe.grounding.model import cxcywh_to_xyxy

ALPHA, GAMMA = 0.25, 2.0


def xyxy_to_cxcywh(b: torch.Tensor) -> torch.Tensor:
    x0, y0, x1, y1 = b.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], -1)


def pairwise_giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """GIoU of every pair of xyxy boxes a (..., P, 4) and b (..., T, 4) -> (..., P, T); as torchvision's
    ``generalized_box_iou`` (2-D only), batched."""
    a, b = a[..., :, None, :], b[..., None, :, :]
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    inter = ((torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
             * (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0))
    union = area_a + area_b - inter
    hull = ((torch.maximum(a[..., 2], b[..., 2]) - torch.minimum(a[..., 0], b[..., 0]))
            * (torch.maximum(a[..., 3], b[..., 3]) - torch.minimum(a[..., 1], b[..., 1])))
    return inter / union - (hull - union) / hull


def match_cost(logits: torch.Tensor, boxes: torch.Tensor, targets: torch.Tensor, w: dict[str, float]) -> torch.Tensor:
    """(..., P) logits, (..., P, 4) cxcywh predictions, (..., T, 4) cxcywh targets -> (..., P, T) cost."""
    p = logits.sigmoid()[..., None]
    pos = ALPHA * (1 - p) ** GAMMA * -(p + 1e-8).log()
    neg = (1 - ALPHA) * p**GAMMA * -(1 - p + 1e-8).log()
    l1 = (boxes[..., :, None, :] - targets[..., None, :, :]).abs().sum(-1)
    giou = pairwise_giou(cxcywh_to_xyxy(boxes), cxcywh_to_xyxy(targets))
    return w["match"] * (pos - neg) + w["l1"] * l1 - w["giou"] * giou


def hungarian(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prediction and target indices of the least-cost one-to-one assignment of a (P, T) cost, T <= P."""
    rows, cols = linear_sum_assignment(cost)
    return rows.astype(np.int64), cols.astype(np.int64)


@torch.no_grad()
def match_batch(logits: torch.Tensor, boxes: torch.Tensor, targets: torch.Tensor, counts: torch.Tensor,
                w: dict[str, float]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch indices, prediction indices and target indices of the matched pairs.

    logits (B, P), boxes (B, P, 4) cxcywh, targets (B, T, 4) cxcywh padded, counts (B,) targets per sample.
    """
    cost = match_cost(logits, boxes, targets, w).numpy()  # (B, P, T), one batched computation
    b_idx, p_idx, t_idx = [], [], []
    for b in torch.nonzero(counts).flatten().tolist():
        rows, cols = hungarian(cost[b, :, : int(counts[b])])
        b_idx.append(np.full(len(rows), b))
        p_idx.append(rows)
        t_idx.append(cols)
    if not b_idx:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty, empty
    return tuple(torch.from_numpy(np.concatenate(a)) for a in (b_idx, p_idx, t_idx))  # type: ignore[return-value]


def set_loss(logits: torch.Tensor, boxes: torch.Tensor, targets: torch.Tensor, counts: torch.Tensor,
             w: dict[str, float]) -> dict[str, torch.Tensor]:
    """``match`` (focal), ``l1``, ``giou`` and their weighted ``total`` for one set of predictions."""
    b, p, t = match_batch(logits.detach(), boxes.detach(), targets, counts, w)
    labels = torch.zeros_like(logits)
    labels[b, p] = 1.0
    norm = max(1.0, float(counts.sum()))
    match = sigmoid_focal_loss(logits, labels, alpha=ALPHA, gamma=GAMMA, reduction="sum") / norm
    pred, true = boxes[b, p], targets[b, t]
    l1 = (pred - true).abs().sum() / norm
    giou = generalized_box_iou_loss(cxcywh_to_xyxy(pred), cxcywh_to_xyxy(true), reduction="sum") / norm
    return {"match": match, "l1": l1, "giou": giou, "total": w["match"] * match + w["l1"] * l1 + w["giou"] * giou}
