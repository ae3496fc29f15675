"""Resumable training state on disk: written atomically, read back as plain data only.

A checkpoint holds tensors, numbers, strings and lists/dicts of them, so it is loaded with
``torch.load(weights_only=True)``: a file that holds anything else (a pickled payload) is refused
before any of it runs, as is a truncated or corrupt one, with a ``CheckpointError`` naming the file.
A failed write (a full disk, say) leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import errno
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from genpipe.pipeline import io

# What torch.save's zip writer says when a write comes up short (a full disk): seen on a full disk,
# "[enforce fail at inline_container.cc:672] . unexpected pos 3008256 vs 3008148".
_DISK_FULL_TEXT = ("unexpected pos", "PytorchStreamWriter failed", "No space left")
# What torch's weights-only unpickler says when the file asks for an object it does not allow.
_OBJECT_REFUSED = re.compile(r"GLOBAL (\S+)|reduce for unrecognized function|Can only (?:create|build)")


class CheckpointError(RuntimeError):
    """A checkpoint could not be written, or was refused on reading; the message names the file."""


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return isinstance(exc, RuntimeError) and any(s in str(exc) for s in _DISK_FULL_TEXT)


def _free_bytes(path: Path) -> str:
    here = path.parent
    while not here.exists() and here != here.parent:
        here = here.parent
    try:
        return f"{shutil.disk_usage(here).free:,} bytes"
    except OSError:
        return "unknown"


def save_state(path: Path, state: dict[str, Any]) -> None:
    """``torch.save(state)`` to ``path`` atomically; on failure the previous file is left intact."""
    try:
        with io.atomic_path(path) as tmp:
            torch.save(state, tmp)
    except Exception as exc:
        if _is_disk_full(exc):
            raise CheckpointError(f"{path}: checkpoint not written: the disk holding {path} is full "
                                  f"({_free_bytes(path)} free); the previous checkpoint is kept") from exc
        raise CheckpointError(f"{path}: checkpoint not written ({type(exc).__name__}: {exc}); "
                              "the previous checkpoint is kept") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, pickle.UnpicklingError):
        found = _OBJECT_REFUSED.search(str(exc))
        if found:
            what = f"; it asks for {found.group(1)}" if found.group(1) else ""
            return f"holds objects other than tensors/numbers/strings/lists (a pickled payload?{what})"
    text = str(exc).split("WeightsUnpickler error:")[-1].strip()  # torch's detail, less its advice
    first = re.split(r"(?<=\.)\s", text.splitlines()[0], maxsplit=1)[0][:200] if text else ""
    return f"truncated or corrupt: {type(exc).__name__}" + (f": {first}" if first else "")


def load_state(path: Path) -> dict[str, Any]:
    """The state dict saved by ``save_state``, on the CPU. Anything but plain tensors, numbers, strings
    and lists/dicts is refused unrun; so is a truncated or unreadable file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: refused: not a readable plain-tensor checkpoint ({_reason(exc)}); "
                              "delete it to train from scratch") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: refused: not a readable plain-tensor checkpoint (holds a {type(state).__name__}, "
                              "not a dict); delete it to train from scratch")
    return state
