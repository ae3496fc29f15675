"""Precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem et al. 2020).

Each real feature spans a ball to its k-th nearest real neighbour; the real manifold is their union,
and the generated one likewise. Precision: the share of generated samples inside the real manifold
(fidelity). Recall: the share of real samples inside the generated manifold (variety). Density: how
many real balls hold a generated sample, on average, over k (about 1 when the two sets match; above 1
where samples crowd the dense regions). Coverage: the share of real balls holding at least one
generated sample (variety, robust to generated outliers).

The definitions, strict inequalities and the k-th neighbour (self excluded) are those of the authors'
``prdc`` package (clovaai/generative-evaluation-prdc); that package builds three dense N x N float64
distance matrices (2.4 GB at N = 10,000) and needs scikit-learn, so the same sums are written here in
row chunks with torch.
"""

from __future__ import annotations

import torch

CHUNK = 1024


def _cdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a, b)  # float64 matrix products: BLAS speed, the cancellation error ~1e-12 of a distance


def knn_radii(x: torch.Tensor, k: int, chunk: int = CHUNK) -> torch.Tensor:
    """Distance from each row of ``x`` (N, d) to its k-th nearest other row (N,)."""
    if not 1 <= k < len(x):
        raise ValueError(f"k-nearest-neighbour radii need 1 <= k < N; got k={k} for N={len(x)}")
    x = x.double()
    out = [_cdist(x[i : i + chunk], x).topk(k + 1, dim=1, largest=False).values[:, k] for i in range(0, len(x), chunk)]
    return torch.cat(out)  # column 0 of each topk is the row itself, at distance 0


def prdc(real: torch.Tensor, fake: torch.Tensor, k: int = 3, chunk: int = CHUNK) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` (M, d) against ``real`` (N, d)."""
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"precision/recall need two (N, d) feature sets of one d; got {tuple(real.shape)} and {tuple(fake.shape)}")
    real, fake = real.double(), fake.double()
    r_real, r_fake = knn_radii(real, k, chunk), knn_radii(fake, k, chunk)
    fake_in_real = torch.zeros(len(fake), dtype=torch.bool)
    balls_per_fake = torch.zeros(len(fake), dtype=torch.float64)
    real_in_fake, real_covered = [], []
    for i in range(0, len(real), chunk):
        d = _cdist(real[i : i + chunk], fake)  # (c, M)
        inside = d < r_real[i : i + chunk, None]  # fake j inside real ball i
        fake_in_real |= inside.any(0)
        balls_per_fake += inside.sum(0)
        real_in_fake.append((d < r_fake[None]).any(1))
        real_covered.append(inside.any(1))
    return {"precision": round(fake_in_real.double().mean().item(), 6),
            "recall": round(torch.cat(real_in_fake).double().mean().item(), 6),
            "density": round((balls_per_fake.sum() / (k * len(fake))).item(), 6),
            "coverage": round(torch.cat(real_covered).double().mean().item(), 6)}
