"""The scenes file format (``results/make_scenes/<split>.npz``): constants, save, load, validate.

A scenes file is ``np.savez_compressed`` (deterministic bytes) with these keys, N scenes, up to
:data:`MAX_OBJECTS` object slots per scene (slots filled first, ``-1`` in absent slots):

==============  =========  ===============  =================================================
key             dtype      shape            meaning
==============  =========  ===============  =================================================
images          uint8      (N, 64, 64, 3)   black background, pixel = intensity x colour
digits          int8       (N, 3)           MNIST class of slot j
colours         int8       (N, 3)           index into :data:`COLOURS`
cells           int8       (N, 3)           cell 0..3 (row k // 2, col k % 2) of the object
boxes           int16      (N, 3, 4)        x0, y0, x1, y1 of the digit's ink, x1/y1 exclusive
masks           uint8      (N, 64, 64)      0 background, k = object slot k - 1
captions        unicode    (N,)             the canonical caption
source_index    int32      (N, 3)           index of the MNIST image in its MNIST split
==============  =========  ===============  =================================================

The constants shared by composition, captions and the models live here (the lowest layer), and
``genpipe.scenes.compose`` re-exports them (``compose.COLOURS`` is this :data:`COLOURS`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np

from genpipe.pipeline.io import atomic_path

IMAGE_SIZE = 64  # scene side, px
GRID = 2  # 2 x 2 cells
CELL = IMAGE_SIZE // GRID  # 32 px
N_CELLS = GRID * GRID
MAX_OBJECTS = 3


class Colour(NamedTuple):
    name: str
    rgb: tuple[int, int, int]  # each 0 or 1: pixel = intensity x rgb


COLOURS: tuple[Colour, ...] = (
    Colour("red", (1, 0, 0)),
    Colour("green", (0, 1, 0)),
    Colour("blue", (0, 0, 1)),
    Colour("yellow", (1, 1, 0)),
    Colour("magenta", (1, 0, 1)),
    Colour("cyan", (0, 1, 1)),
    Colour("white", (1, 1, 1)),
)
COLOUR_NAMES: tuple[str, ...] = tuple(c.name for c in COLOURS)
COLOUR_RGB = np.array([c.rgb for c in COLOURS], np.uint8)  # (7, 3)


def colour_index(name: str) -> int:
    """Index of a colour name in :data:`COLOURS`; ValueError listing the names otherwise."""
    try:
        return COLOUR_NAMES.index(name)
    except ValueError:
        raise ValueError(f"unknown colour {name!r} (known: {', '.join(COLOUR_NAMES)})") from None


class SceneObject(NamedTuple):
    """One object of a scene: what a caption describes."""

    digit: int  # 0..9
    colour: int  # index into COLOURS
    cell: int  # 0..3 (row cell // 2, column cell % 2)
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the ink, x1/y1 exclusive

    @property
    def colour_name(self) -> str:
        return COLOUR_NAMES[self.colour]

    @property
    def phrase(self) -> str:
        """``"a red 3"``."""
        return f"a {self.colour_name} {self.digit}"


class ScenesError(ValueError):
    """A scenes file lacks a key or has a wrong dtype or shape; the message names file and key."""


# key -> (dtype kind check, shape with "N" for the number of scenes)
SPEC: dict[str, tuple[str, tuple[int | str, ...]]] = {
    "images": ("uint8", ("N", IMAGE_SIZE, IMAGE_SIZE, 3)),
    "digits": ("int8", ("N", MAX_OBJECTS)),
    "colours": ("int8", ("N", MAX_OBJECTS)),
    "cells": ("int8", ("N", MAX_OBJECTS)),
    "boxes": ("int16", ("N", MAX_OBJECTS, 4)),
    "masks": ("uint8", ("N", IMAGE_SIZE, IMAGE_SIZE)),
    "captions": ("unicode", ("N",)),
    "source_index": ("int32", ("N", MAX_OBJECTS)),
}
KEYS = tuple(SPEC)


@dataclass(frozen=True)
class Scenes:
    """All scenes of one split (arrays as in the module docstring; row i = scene i)."""

    images: np.ndarray  # (N, 64, 64, 3) uint8
    digits: np.ndarray  # (N, 3) int8
    colours: np.ndarray  # (N, 3) int8
    cells: np.ndarray  # (N, 3) int8
    boxes: np.ndarray  # (N, 3, 4) int16
    masks: np.ndarray  # (N, 64, 64) uint8
    captions: np.ndarray  # (N,) unicode
    source_index: np.ndarray  # (N, 3) int32

    def __post_init__(self) -> None:
        validate_arrays({f.name: getattr(self, f.name) for f in fields(self)}, source="Scenes")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def n_objects(self) -> np.ndarray:
        """(N,) int64: number of objects per scene (filled slots)."""
        return (self.digits >= 0).sum(axis=1)

    def objects(self, i: int) -> list[SceneObject]:
        """The objects of scene ``i`` in slot order."""
        return [
            SceneObject(int(self.digits[i, j]), int(self.colours[i, j]), int(self.cells[i, j]), tuple(int(v) for v in self.boxes[i, j]))
            for j in range(MAX_OBJECTS)
            if self.digits[i, j] >= 0
        ]

    def subset(self, index: np.ndarray | slice) -> Scenes:
        """The scenes at ``index`` (an index array, a boolean mask or a slice)."""
        return Scenes(**{k: np.asarray(v)[index] for k, v in self.arrays().items()})

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in KEYS}


def _dtype_ok(arr: np.ndarray, want: str) -> bool:
    return arr.dtype.kind == "U" if want == "unicode" else arr.dtype == np.dtype(want)


def validate_arrays(arrays: dict[str, np.ndarray], source: str) -> None:
    """Check keys, dtypes and shapes (and one N for all keys); ScenesError naming source and key."""
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise ScenesError(f"{source}: missing key {missing[0]!r} (a scenes file has keys {', '.join(KEYS)})")
    n = arrays["images"].shape[0] if arrays["images"].ndim else -1
    for key, (dtype, shape) in SPEC.items():
        arr = arrays[key]
        want = tuple(n if s == "N" else s for s in shape)
        pretty = "(" + ", ".join(str(s) for s in shape) + ")"
        if tuple(arr.shape) != want:
            raise ScenesError(f"{source}: key {key!r} has shape {tuple(arr.shape)}, expected {pretty} with N = {n}")
        if not _dtype_ok(arr, dtype):
            raise ScenesError(f"{source}: key {key!r} has dtype {arr.dtype}, expected {dtype}")


def save_scenes(path: str | os.PathLike[str], scenes: Scenes) -> None:
    """Write ``scenes`` atomically with ``np.savez_compressed`` (same arrays => same bytes)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **scenes.arrays())


def load_scenes(path: str | os.PathLike[str]) -> Scenes:
    """Read and validate a scenes file; ScenesError naming the file, the key and the expected shape."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ScenesError(f"{path}: file not found (run the make_scenes stage)") from None
    except (OSError, ValueError) as exc:
        raise ScenesError(f"{path}: not a readable scenes file: {exc}") from exc
    validate_arrays(arrays, source=str(path))
    return Scenes(**{k: arrays[k] for k in KEYS})
