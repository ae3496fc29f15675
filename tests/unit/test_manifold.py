"""Precision / recall / density / coverage (scoring.manifold) and the Fréchet distance of scoring.evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from genpipe.scoring.evaluation import fid_kid
from genpipe.scoring.manifold import knn_radii, prdc


def test_hand_computed_case() -> None:
    # real 0, 1, 2, 3 (k = 1: every ball has radius 1); fake 0.5 and 10 (radius 9.5 each).
    # precision: 0.5 lies in the balls of 0 and 1, 10 in none -> 1/2; density: 2 balls / (k * 2 fakes) = 1;
    # recall: every real point is within 9.5 of 0.5 -> 1; coverage: only 0 and 1 have a fake within 1 -> 1/2
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    fake = torch.tensor([[0.5], [10.0]])
    assert knn_radii(real, 1).tolist() == [1.0, 1.0, 1.0, 1.0]
    assert knn_radii(fake, 1).tolist() == [9.5, 9.5]
    assert prdc(real, fake, k=1) == {"precision": 0.5, "recall": 1.0, "density": 1.0, "coverage": 0.5}


def test_a_set_against_itself_scores_one() -> None:
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(0))
    m = prdc(x, x, k=3, chunk=64)  # chunks smaller than N: the row blocks add up
    assert m["precision"] == m["recall"] == m["coverage"] == 1.0
    assert m["density"] >= 1.0  # each point lies in its own ball, and in some of its neighbours'


def _modes(n_per_mode: int, modes: list[int], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0]])
    return torch.cat([centres[m] + torch.randn(n_per_mode, 2, generator=g) for m in modes])


def test_dropping_half_the_modes_costs_recall_not_precision() -> None:
    real = _modes(200, [0, 1, 2, 3], seed=0)
    full = prdc(real, _modes(200, [0, 1, 2, 3], seed=1))
    half = prdc(real, _modes(400, [0, 1], seed=1))  # same number of samples, two of the four modes
    assert half["precision"] >= 0.9 and abs(half["precision"] - full["precision"]) < 0.05
    assert full["recall"] > 0.9 and half["recall"] < 0.55
    assert full["coverage"] > 0.8 and half["coverage"] < 0.55
    assert abs(half["density"] - full["density"]) < 0.1  # as crowded as the real set where it does put samples


def test_bad_shapes_and_k_are_refused() -> None:
    with pytest.raises(ValueError, match="one d"):
        prdc(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="k=5 for N=4"):
        knn_radii(torch.zeros(4, 2), 5)


def test_frechet_distance_matches_scipy_on_small_gaussians() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 4))
    b = rng.normal(size=(300, 4)) @ np.diag([1.0, 2.0, 0.5, 1.0]) + np.array([0.5, 0.0, -1.0, 0.2])
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real
    expected = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))
    got = fid_kid(torch.tensor(a), torch.tensor(b), kid_subsets=2, kid_subset_size=100, seed=0)["fid"]
    assert got == pytest.approx(expected, rel=1e-3, abs=1e-3)
