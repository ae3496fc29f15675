"""Determinism for every stage (DESIGN.md, contract 8): same machine + same threads => same bytes."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def set_determinism(seed: int) -> None:
    """Seed every RNG and make kernels deterministic (same machine + threads => same bytes)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
