"""Classification metrics (torchmetrics) with stable rounding for byte-identical metrics.json."""

from __future__ import annotations

import torch
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_confusion_matrix, multiclass_f1_score


def classification_metrics(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Accuracy, micro-F1 and macro-F1 of predicted labels ``pred`` (N,) against ``target`` (N,)."""
    args = dict(preds=pred, target=target, num_classes=num_classes)
    return {
        "accuracy": round(multiclass_accuracy(**args, average="micro").item(), 6),
        "f1_micro": round(multiclass_f1_score(**args, average="micro").item(), 6),
        "f1_macro": round(multiclass_f1_score(**args, average="macro").item(), 6),
    }


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) counts; rows are true labels, columns predictions."""
    return multiclass_confusion_matrix(pred, target, num_classes=num_classes)
