"""Scene composition: coloured MNIST digits on a 2 x 2 grid of 32 x 32 cells, and a shifted copy.

A scene is 64 x 64 RGB on black with 1-3 objects, each in its own random cell. An object is an
MNIST digit whose 28 x 28 frame is resized (bilinear, antialiased) to a side drawn from
``size_range`` and jittered inside its cell; a pixel is the digit's intensity times its colour
(:data:`COLOURS`, components 0 or 1). Ground truth comes with the pixels: digit, colour, cell,
ink box and instance mask per object. Held-out (digit, colour) pairs can be excluded (train/val).

Everything is vectorised per resize size (one ``interpolate`` call per size, one scatter per
size), so 65,000 scenes take seconds on one thread; all randomness comes from the ``rng`` given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from genpipe.scenes.captions import DEFAULT_TEMPLATES, canonical_caption, check_templates
from genpipe.scenes.dataset import (  # noqa: F401  (COLOURS and the geometry are re-exported here)
    CELL,
    COLOUR_NAMES,
    COLOUR_RGB,
    COLOURS,
    GRID,
    IMAGE_SIZE,
    MAX_OBJECTS,
    N_CELLS,
    Colour,
    SceneObject,
    Scenes,
    colour_index,
)

DEFAULT_OBJECT_PROBS = (0.3, 0.4, 0.3)  # P(1, 2, 3 objects)
DEFAULT_SIZE_RANGE = (22, 32)  # resized digit side, px, both ends included
DEFAULT_HELD_OUT = ((0, "red"), (1, "green"), (2, "blue"), (3, "yellow"), (4, "magenta"), (5, "cyan"), (6, "white"))


def held_out_pairs(pairs: Sequence[Sequence]) -> list[tuple[int, int]]:
    """``[[digit, colour name or index], ...]`` -> ``[(digit, colour index), ...]`` (checked)."""
    out = []
    for d, c in pairs:
        ci = colour_index(c) if isinstance(c, str) else int(c)
        if not (0 <= int(d) <= 9 and 0 <= ci < len(COLOURS)):
            raise ValueError(f"held-out pair {[d, c]}: digit must be 0-9 and colour one of {', '.join(COLOUR_NAMES)}")
        out.append((int(d), ci))
    return out


def resize_digits(images: np.ndarray, size: int) -> np.ndarray:
    """(M, 28, 28) uint8 -> (M, size, size) uint8, bilinear with antialiasing, rounded."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float()[:, None]  # (M, 1, 28, 28)
    y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y[:, 0].round_().clamp_(0, 255).to(torch.uint8).numpy()


def _ink_boxes(glyphs: np.ndarray) -> np.ndarray:
    """(M, s, s) uint8 -> (M, 4) x0, y0, x1, y1 of the pixels > 0 (x1/y1 exclusive)."""
    ink = glyphs > 0
    rows, cols = ink.any(axis=2), ink.any(axis=1)  # (M, s)
    empty = ~rows.any(axis=1)
    if empty.any():
        raise ValueError(f"{int(empty.sum())} digit image(s) have no ink after resizing to {glyphs.shape[1]} px")
    s = glyphs.shape[1]
    y0, y1 = rows.argmax(axis=1), s - rows[:, ::-1].argmax(axis=1)
    x0, x1 = cols.argmax(axis=1), s - cols[:, ::-1].argmax(axis=1)
    return np.stack([x0, y0, x1, y1], axis=1)


def sample_layout(
    labels: np.ndarray,
    pool: np.ndarray,
    n: int,
    rng: np.random.Generator,
    object_probs: Sequence[float] = DEFAULT_OBJECT_PROBS,
    held_out: Sequence[tuple[int, int]] = (),
) -> dict[str, np.ndarray]:
    """Per scene and slot (N, 3), -1 in absent slots: digits, colours, cells, source_index.

    Objects are drawn uniformly from ``pool`` (indices into ``labels``: a digit may recur),
    colours uniformly among those not paired with the digit in ``held_out`` (so a held-out pair
    never occurs), cells as a random subset ordered by cell index (top-left first).
    """
    probs = np.asarray(object_probs, float)
    if probs.shape != (MAX_OBJECTS,) or (probs < 0).any() or not np.isclose(probs.sum(), 1):
        raise ValueError(f"object_probs must be {MAX_OBJECTS} probabilities summing to 1, got {list(object_probs)}")
    counts = rng.choice(MAX_OBJECTS, size=n, p=probs) + 1  # (N,)
    present = np.arange(MAX_OBJECTS)[None] < counts[:, None]  # (N, 3)
    cells = np.argsort(rng.random((n, N_CELLS)), axis=1)[:, :MAX_OBJECTS]
    cells = np.sort(np.where(present, cells, N_CELLS), axis=1)  # filled slots first, by cell
    source = np.asarray(pool)[rng.integers(len(pool), size=(n, MAX_OBJECTS))]
    digits = np.asarray(labels)[source]
    allowed = np.zeros((10, len(COLOURS)), bool) | True
    for d, c in held_out:
        allowed[d, c] = False
    n_allowed = allowed.sum(axis=1)  # (10,)
    table = np.argsort(~allowed, axis=1, kind="stable")  # row d: allowed colours first, in order
    pick = np.floor(rng.random((n, MAX_OBJECTS)) * n_allowed[digits]).astype(int)
    colours = table[digits, pick]
    return {
        "digits": np.where(present, digits, -1).astype(np.int8),
        "colours": np.where(present, colours, -1).astype(np.int8),
        "cells": np.where(present, cells, -1).astype(np.int8),
        "source_index": np.where(present, source, -1).astype(np.int32),
    }


def _paint(images: np.ndarray, masks: np.ndarray, glyphs: np.ndarray, scene: np.ndarray, slot: np.ndarray,
           colour: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """Write each glyph's ink (pixels > 0) at (x, y) of its scene: intensity x colour, mask slot + 1."""
    b, r, c = np.nonzero(glyphs)
    rows, cols, sc = y[b] + r, x[b] + c, scene[b]
    images[sc, rows, cols] = glyphs[b, r, c][:, None] * COLOUR_RGB[colour[b]]
    masks[sc, rows, cols] = slot[b] + 1


def compose_scenes(
    digit_images: np.ndarray,
    digit_labels: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    pool: np.ndarray | None = None,
    object_probs: Sequence[float] = DEFAULT_OBJECT_PROBS,
    size_range: tuple[int, int] = DEFAULT_SIZE_RANGE,
    held_out: Sequence[tuple[int, int]] = (),
    templates: Mapping[str, Sequence[str]] = DEFAULT_TEMPLATES,
) -> Scenes:
    """``n`` scenes from the digits ``digit_images[pool]`` (uint8 (M, 28, 28), labels (M,)).

    ``held_out``: (digit, colour index) pairs that never occur (pass () for test scenes, where
    they occur naturally, ~1/70 of objects per pair). Captions are canonical (``templates``).
    """
    lo, hi = size_range
    if not 1 <= lo <= hi <= CELL:
        raise ValueError(f"size_range must satisfy 1 <= lo <= hi <= {CELL}, got {list(size_range)}")
    check_templates(templates)
    pool = np.arange(len(digit_labels)) if pool is None else np.asarray(pool)
    lay = sample_layout(digit_labels, pool, n, rng, object_probs, held_out)
    sizes = rng.integers(lo, hi + 1, size=(n, MAX_OBJECTS))
    jitter = np.floor(rng.random((n, MAX_OBJECTS, 2)) * (CELL - sizes + 1)[..., None]).astype(int)  # (N, 3, 2) x, y

    images = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    masks = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    boxes = np.full((n, MAX_OBJECTS, 4), -1, np.int16)
    scene, slot = np.nonzero(lay["digits"] >= 0)  # every object, (n_obj,)
    cell = lay["cells"][scene, slot].astype(int)
    x = (cell % GRID) * CELL + jitter[scene, slot, 0]
    y = (cell // GRID) * CELL + jitter[scene, slot, 1]
    size = sizes[scene, slot]
    for s in np.unique(size):
        sel = np.nonzero(size == s)[0]
        glyphs = resize_digits(digit_images[lay["source_index"][scene[sel], slot[sel]]], int(s))  # (B, s, s)
        ink = _ink_boxes(glyphs)
        boxes[scene[sel], slot[sel]] = ink + np.stack([x[sel], y[sel], x[sel], y[sel]], axis=1)
        _paint(images, masks, glyphs, scene[sel], slot[sel], lay["colours"][scene[sel], slot[sel]], x[sel], y[sel])
    out = Scenes(images=images, masks=masks, boxes=boxes, captions=np.array([""] * n), **lay)
    captions = [canonical_caption(out.objects(i), templates) for i in range(n)]
    return Scenes(**{**out.arrays(), "captions": np.array(captions, dtype=str)})


def _disjoint(box: np.ndarray, placed: list[np.ndarray]) -> bool:
    return all(box[2] <= p[0] or p[2] <= box[0] or box[3] <= p[1] or p[3] <= box[1] for p in placed)


def shift_scenes(scenes: Scenes, rng: np.random.Generator, max_tries: int = 1000) -> Scenes:
    """The same scenes with each object's ink moved to a random position anywhere in the image.

    Each object keeps its pixels, digit, colour, slot, source_index, cell (the one it came from)
    and caption; its ink box is placed uniformly inside the image, not overlapping the other
    boxes already placed (rejection sampling; after ``max_tries`` failures the scene restarts).
    """
    images = np.zeros_like(scenes.images)
    masks = np.zeros_like(scenes.masks)
    boxes = scenes.boxes.copy()
    for i in range(len(scenes)):
        objs = np.nonzero(scenes.digits[i] >= 0)[0]
        src = scenes.boxes[i, objs].astype(int)  # (k, 4)
        wh = src[:, 2:] - src[:, :2]
        for _restart in range(100):
            placed: list[np.ndarray] = []
            for w, h in wh:
                for _ in range(max_tries):
                    x0, y0 = rng.integers(0, IMAGE_SIZE - w + 1), rng.integers(0, IMAGE_SIZE - h + 1)
                    box = np.array([x0, y0, x0 + w, y0 + h])
                    if _disjoint(box, placed):
                        placed.append(box)
                        break
                else:
                    break
            if len(placed) == len(objs):
                break
        else:
            raise RuntimeError(f"scene {i}: could not place {len(objs)} non-overlapping boxes")
        for j, sb, db in zip(objs, src, placed):
            keep = scenes.masks[i, sb[1] : sb[3], sb[0] : sb[2]] == j + 1  # (h, w)
            patch = scenes.images[i, sb[1] : sb[3], sb[0] : sb[2]]
            images[i, db[1] : db[3], db[0] : db[2]][keep] = patch[keep]
            masks[i, db[1] : db[3], db[0] : db[2]][keep] = j + 1
            boxes[i, j] = db
    return Scenes(**{**scenes.arrays(), "images": images, "masks": masks, "boxes": boxes})
