"""What DINO's features and attention are judged by: a weighted k-NN (DINO's ``eval_knn.py``) and the
class token's attention thresholded to keep a share of its mass (DINO's ``visualize_attention.py``),
compared with a ground-truth mask by Jaccard index."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def knn_predict(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor, k: int = 20,
                temperature: float = 0.07, num_classes: int = 10, chunk: int = 1000) -> torch.Tensor:
    """Labels of ``test_feats``: the ``k`` nearest train features by cosine similarity vote for their
    label with weight exp(similarity / temperature)."""
    if k < 1 or k > len(train_feats):
        raise ValueError(f"k-NN needs 1 <= k <= {len(train_feats)} train features, got k={k}")
    train = F.normalize(train_feats.float(), dim=1)
    preds = []
    for start in range(0, len(test_feats), chunk):
        sim = F.normalize(test_feats[start : start + chunk].float(), dim=1) @ train.t()  # (b, N)
        top, idx = sim.topk(k, dim=1)
        votes = torch.zeros(len(sim), num_classes)
        votes.scatter_add_(1, train_labels[idx], (top / temperature).exp())
        preds.append(votes.argmax(1))
    return torch.cat(preds)


def mass_mask(attention: torch.Tensor, keep: float = 0.6) -> torch.Tensor:
    """Boolean masks (…, N) keeping the largest weights of each map (…, N) until they hold ``keep``
    of its mass (DINO: sort, cumulative sum, keep where the sum of the larger ones is below ``keep``)."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"the attention mass to keep must be in (0, 1], got {keep}")
    a = attention / attention.sum(-1, keepdim=True)
    values, order = a.sort(dim=-1, descending=True)
    before = values.cumsum(-1) - values  # mass of the weights larger than each one
    kept_sorted = before < keep
    return torch.zeros_like(kept_sorted).scatter(-1, order, kept_sorted)


def jaccard(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """|pred ∩ target| / |pred ∪ target| over the last two dims (1 where both are empty)."""
    pred, target = pred.bool(), target.bool()
    inter = (pred & target).flatten(-2).sum(-1).float()
    union = (pred | target).flatten(-2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
