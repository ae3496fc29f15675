"""Anomaly detection with a VAE trained without one class: score = -ELBO (or reconstruction NLL)."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc, binary_roc


def roc(score: torch.Tensor, is_anomaly: torch.Tensor, points: int = 101) -> tuple[float, list[dict[str, float]]]:
    """ROC-AUC of "higher score = anomaly" and the ROC curve resampled at ``points`` FPR values."""
    if is_anomaly.all() or not is_anomaly.any():
        raise ValueError("ROC needs both normal and anomalous test images")
    target = is_anomaly.long()
    # torchmetrics reads scores outside [0, 1] as logits and squashes them with a sigmoid, which
    # ties every score of hundreds of nats at 1.0; a min-max rescale keeps the order and the ROC.
    score = score.double()
    score = (score - score.min()) / (score.max() - score.min()).clamp_min(1e-12)
    auc = binary_auroc(score, target).item()
    fpr, tpr, _ = binary_roc(score, target)
    grid = np.linspace(0.0, 1.0, points)
    tpr_grid = np.interp(grid, fpr.numpy(), tpr.numpy())
    return auc, [{"fpr": round(float(f), 4), "tpr": round(float(t), 6)} for f, t in zip(grid, tpr_grid)]
