"""The one format every generator writes and ``evaluate_samples`` reads: ``samples.npz``.

* ``images``  uint8 (N, 28, 28), pixel intensities 0..255
* ``labels``  int64 (N,), the requested class of a conditional sample, -1 for unconditional
* ``dataset`` the dataset the generator was trained on (str)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genpipe.pipeline import io

UNCONDITIONAL = -1


class SamplesError(ValueError):
    """A samples.npz that does not follow the format above (the message names the problem)."""


def save(path: Path, images: np.ndarray, labels: np.ndarray, dataset: str) -> None:
    check(images, labels, path)
    with io.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, images=images, labels=labels.astype(np.int64), dataset=np.array(dataset))


def load(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """(images, labels, dataset), checked."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"images", "labels", "dataset"} - set(z.files)
            if missing:
                raise SamplesError(f"{path}: missing arrays {sorted(missing)} (has {sorted(z.files)})")
            images, labels, dataset = z["images"], z["labels"], str(z["dataset"])
    except (OSError, ValueError) as exc:
        if isinstance(exc, SamplesError):
            raise
        raise SamplesError(f"{path}: not a readable .npz ({exc})") from exc
    check(images, labels, path)
    return images, labels, dataset


def check(images: np.ndarray, labels: np.ndarray, path: Path | str = "samples") -> None:
    if images.dtype != np.uint8:
        raise SamplesError(f"{path}: images must be uint8 0..255, got {images.dtype}")
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise SamplesError(f"{path}: images must have shape (N, 28, 28), got {images.shape}")
    if labels.shape != (len(images),):
        raise SamplesError(f"{path}: labels must have shape ({len(images)},), got {labels.shape}")
    if len(labels) and (labels.min() < UNCONDITIONAL or labels.max() > 9):
        raise SamplesError(f"{path}: labels must be -1 (unconditional) or a class 0..9, got {labels.min()}..{labels.max()}")


def to_uint8(x01) -> np.ndarray:
    """Float images in [0, 1] (torch or numpy, (N, 1, H, W) or (N, H, W)) -> uint8 (N, H, W)."""
    a = np.asarray(x01.detach().cpu().numpy() if hasattr(x01, "detach") else x01, dtype=np.float32)
    a = a.reshape(len(a), a.shape[-2], a.shape[-1])
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
