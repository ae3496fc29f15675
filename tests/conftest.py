from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(autouse=True)
def _chdir_root(monkeypatch):
    """Tests run from the repository root, as the pipeline does."""
    monkeypatch.chdir(ROOT)
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
