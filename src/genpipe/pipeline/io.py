"""Atomic artifact writing and checked loading.

Every artifact is written to a temporary file in its destination directory and moved into place
with ``os.replace``: a killed job never leaves a file that looks complete.

Every safetensors file is written by :func:`save_tensors`, with at most one metadata key,
``"config"``, holding sorted JSON: safetensors (0.8) writes several metadata keys in an order
that changes from process to process, so more than one key would make the bytes (and DVC's hash)
differ between runs of the same job.
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
from safetensors import safe_open
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


TENSORS_CONFIG_KEY = "config"


def save_tensors(dest: str | os.PathLike[str], tensors: dict[str, torch.Tensor], config: dict[str, Any] | None = None) -> None:
    """Write ``tensors`` as safetensors atomically, with ``config`` as the only metadata key.

    The metadata is ``{"config": json.dumps(config, sort_keys=True)}`` (none when ``config`` is
    None): one key whose value does not depend on dict order, so the same tensors and config give
    the same bytes in every process. Read it back with :func:`read_tensors_config`.
    """
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    metadata = None if config is None else {TENSORS_CONFIG_KEY: json.dumps(config, sort_keys=True)}
    with atomic_path(dest) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_tensors_config(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``config`` stored by :func:`save_tensors` in a safetensors file (None if it has none)."""
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    raw = meta.get(TENSORS_CONFIG_KEY)
    return None if raw is None else json.loads(raw)


def load_tensors(path: str | os.PathLike[str], names: list[str] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Tensors of a safetensors file (all, or only ``names``) and its stored ``config``.

    Raises KeyError naming the file and the tensors it has when one of ``names`` is missing.
    """
    with safe_open(str(path), framework="pt") as fh:
        have = list(fh.keys())
        missing = [n for n in names or [] if n not in have]
        if missing:
            raise KeyError(f"{path} has no {', '.join(map(repr, missing))} (it has {sorted(have)})")
        tensors = {n: fh.get_tensor(n) for n in (have if names is None else names)}
        meta = fh.metadata() or {}
    raw = meta.get(TENSORS_CONFIG_KEY)
    return tensors, None if raw is None else json.loads(raw)


def save_model(model: torch.nn.Module, config: dict[str, Any], weights: Path, config_path: Path) -> None:
    """Save ``model`` as safetensors and its constructor ``config`` as JSON, both atomically."""
    save_tensors(weights, model.state_dict(), config)
    write_json(config_path, config)


def load_state(weights: Path, config_path: Path, expected: dict[str, Any] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load safetensors weights and their config; check the config against ``expected`` keys.

    Raises :class:`ConfigMismatchError` naming each key whose value differs, and when the config
    embedded in the weights differs from the one beside them.
    """
    config = read_json(config_path)
    state = load_file(str(weights))
    embedded = read_tensors_config(weights)
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
