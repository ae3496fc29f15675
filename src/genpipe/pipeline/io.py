"""Atomic artifact writing and checked loading.

Every artifact is written to a temporary file in its destination directory and moved into place
with ``os.replace``: a killed job never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors.torch import load_file, save_file


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; on success move it onto ``dest``.

    On any exception the temporary file is removed and ``dest`` is left untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(dest: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_text(dest: str | os.PathLike[str], text: str) -> None:
    write_bytes(dest, text.encode())


def write_json(dest: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON with sorted keys and a trailing newline (stable bytes for git and DVC)."""
    write_text(dest, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ConfigMismatchError(ValueError):
    """A checkpoint's config.json disagrees with what the caller expects."""


def save_model(model: torch.nn.Module, config: dict[str, Any], weights: Path, config_path: Path) -> None:
    """Save ``model`` as safetensors and its constructor ``config`` as JSON, both atomically."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"config": json.dumps(config, sort_keys=True)})
    write_json(config_path, config)


def load_state(weights: Path, config_path: Path, expected: dict[str, Any] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load safetensors weights and their config; check the config against ``expected`` keys.

    Raises :class:`ConfigMismatchError` naming each key whose value differs, and when the config
    embedded in the weights differs from the one beside them.
    """
    config = read_json(config_path)
    state = load_file(str(weights))
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as fh:
        embedded = json.loads((fh.metadata() or {}).get("config", "null"))
    if embedded is not None and embedded != config:
        raise ConfigMismatchError(f"{config_path} does not match the config stored in {weights}")
    if expected:
        bad = [f"{k}: expected {v!r}, found {config.get(k)!r}" for k, v in expected.items() if config.get(k) != v]
        if bad:
            raise ConfigMismatchError(f"{config_path}: " + "; ".join(bad))
    return state, config


def write_tsv(dest: str | os.PathLike[str], rows: list[dict[str, Any]]) -> None:
    """Write rows (dicts with the same keys) as a tab-separated table with a header."""
    cols = list(rows[0]) if rows else []
    lines = ["\t".join(cols)] + ["\t".join(str(r[c]) for c in cols) for r in rows]
    write_text(dest, "\n".join(lines) + "\n")
