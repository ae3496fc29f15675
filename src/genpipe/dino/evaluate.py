"""What DINO's features and attention are judged by: a weighted k-NN (DINO's ``eval_knn.py``) and the
class token's attention thresholded to keep a share of its mass (DINO's ``visualize_attention.py``),
compared with a ground-truth mask by Jaccard index."""

from __future__ import annotations

import math

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


def standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Features centred and scaled by the train set's per-dimension mean and std (constant ones left at 0)."""
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return [(t - mean) / std for t in (train, *others)]


def linear_probe(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor, num_classes: int = 10,
                 epochs: int = 30, batch_size: int = 1024, lr: float = 1e-2, weight_decay: float = 1e-4, seed: int = 0) -> torch.Tensor:
    """Labels of ``test_feats`` by a softmax-regression layer trained on frozen, standardised train features
    (AdamW, cosine lr over ``epochs``, a seeded batch order)."""
    train, test = standardise(train_feats.float(), test_feats.float())
    g = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(train.shape[1], num_classes)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    opt = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * -(-len(train) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(epochs):
        perm = torch.randperm(len(train), generator=g)
        for start in range(0, len(train), batch_size):
            idx = perm[start : start + batch_size]
            loss = F.cross_entropy(layer(train[idx]), train_labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        return layer(test).argmax(1)


def upsample_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """(…, gh, gw) boolean patch masks -> (…, size, size) pixel masks (each patch's pixels take its value)."""
    lead = masks.shape[:-2]
    flat = masks.reshape(-1, 1, *masks.shape[-2:]).float()
    return F.interpolate(flat, size=(size, size), mode="nearest").bool().reshape(*lead, size, size)


def attention_jaccard(attention: torch.Tensor, objects: torch.Tensor, keep: float = 0.6) -> dict[str, torch.Tensor]:
    """DINO's attention-vs-mask protocol on a batch.

    attention: (B, H, gh, gw) the class token's last-layer attention to the patches, per head;
    objects: (B, S, S) the object index per pixel (0 = background, k = object k).
    Returns per image and head the Jaccard of the head's 60 %-mass mask with the foreground,
    ``foreground`` (B, H), and with each object's own mask, ``per_object`` (B, H, K) (NaN where the
    scene has no object k)."""
    b, h, gh, gw = attention.shape
    kept = mass_mask(attention.reshape(b, h, gh * gw), keep).reshape(b, h, gh, gw)
    pixels = upsample_masks(kept, objects.shape[-1])  # (B, H, S, S)
    fg = jaccard(pixels, (objects > 0)[:, None].expand_as(pixels))
    k = int(objects.max()) if objects.numel() else 0
    per_object = torch.full((b, h, max(k, 1)), math.nan)
    for j in range(1, k + 1):
        own = (objects == j)[:, None].expand_as(pixels)
        present = (objects == j).flatten(1).any(1)
        per_object[:, :, j - 1] = torch.where(present[:, None], jaccard(pixels, own), torch.tensor(math.nan))
    return {"foreground": fg, "per_object": per_object}
