"""make_scenes: ground truth agrees with the pixels, held-out pairs, determinism, captions, bad files.

Digits are synthetic 28 x 28 strokes (no data needed); sizes are tiny (a few hundred scenes).
"""

import re

import numpy as np
import pytest

from genpipe.scenes.captions import (
    DEFAULT_TEMPLATES,
    TemplateError,
    applicable_templates,
    canonical_caption,
    check_templates,
    hard_negatives,
    meaning,
    random_caption,
    render,
)
from genpipe.scenes.compose import CELL, COLOUR_RGB, COLOURS, compose_scenes, held_out_pairs, shift_scenes
from genpipe.scenes.dataset import SceneObject, ScenesError, load_scenes, save_scenes
from genpipe.scenes.stages import build_splits, split_counts

PARAMS = {
    "seed": 0,
    "n_train": 200,
    "n_val": 40,
    "n_test": 200,
    "val_digits": 20,
    "object_probs": [0.3, 0.4, 0.3],
    "size_range": [22, 32],
    "held_out": [[0, "red"], [1, "green"], [2, "blue"], [3, "yellow"], [4, "magenta"], [5, "cyan"], [6, "white"]],
    "templates": DEFAULT_TEMPLATES,
}


def _digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 28, 28) uint8 random thick strokes with soft edges, labels i % 10."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    out = np.zeros((n, 28, 28), np.float32)
    for i in range(n):
        for _ in range(3):
            (x0, y0), (x1, y1) = rng.uniform(5, 23, (2, 2))
            t = np.clip(((xx - x0) * (x1 - x0) + (yy - y0) * (y1 - y0)) / max((x1 - x0) ** 2 + (y1 - y0) ** 2, 1e-6), 0, 1)
            d = np.hypot(xx - (x0 + t * (x1 - x0)), yy - (y0 + t * (y1 - y0)))
            out[i] = np.maximum(out[i], np.clip(2.5 - d, 0, 1) * rng.uniform(150, 255))
    return out.astype(np.uint8), np.arange(n) % 10


@pytest.fixture(scope="module")
def mnist():
    xtr, ytr = _digits(120, 0)
    xte, yte = _digits(60, 1)
    return xtr, ytr, xte, yte


@pytest.fixture(scope="module")
def splits(mnist):
    return build_splits(*mnist, PARAMS)


def _check_pixels(scenes, cell_aligned: bool):
    for i in range(len(scenes)):
        img, mask = scenes.images[i].astype(int), scenes.masks[i]
        k = scenes.n_objects[i]
        assert (scenes.digits[i, :k] >= 0).all() and (scenes.digits[i, k:] == -1).all()
        assert (scenes.boxes[i, k:] == -1).all() and (scenes.source_index[i, k:] == -1).all()
        assert set(np.unique(mask)) <= set(range(k + 1))
        assert (img[mask == 0] == 0).all()  # black background
        for j in range(k):
            rgb = COLOUR_RGB[scenes.colours[i, j]].astype(int)
            inside = mask == j + 1
            ys, xs = np.nonzero(inside)
            x0, y0, x1, y1 = scenes.boxes[i, j]
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)  # box encloses the mask exactly
            px = img[inside]  # (P, 3) = intensity x colour
            intensity = px.max(axis=1)
            assert (intensity > 0).all()
            assert (px == intensity[:, None] * rgb[None]).all()
            if cell_aligned:
                c = scenes.cells[i, j]
                cx, cy = (c % 2) * CELL, (c // 2) * CELL
                assert cx <= x0 and x1 <= cx + CELL and cy <= y0 and y1 <= cy + CELL
        if cell_aligned:
            cells = scenes.cells[i, :k]
            assert len(set(cells)) == k and list(cells) == sorted(cells)


def test_ground_truth_agrees_with_pixels(splits):
    for name in ("train", "val", "test"):
        _check_pixels(splits[name], cell_aligned=True)
    _check_pixels(splits["test_shifted"], cell_aligned=False)


def test_test_shifted_is_the_test_scenes_moved(splits):
    test, shifted = splits["test"], splits["test_shifted"]
    for key in ("digits", "colours", "cells", "source_index", "captions"):
        assert (getattr(test, key) == getattr(shifted, key)).all()
    assert (test.boxes[..., 2:] - test.boxes[..., :2] == shifted.boxes[..., 2:] - shifted.boxes[..., :2]).all()
    assert (test.boxes != shifted.boxes).any()
    for i in range(len(shifted)):
        b = shifted.boxes[i, : shifted.n_objects[i]]
        assert (b[:, :2] >= 0).all() and (b[:, 2:] <= 64).all()
        for p in range(len(b)):
            for q in range(p + 1, len(b)):
                assert b[p, 2] <= b[q, 0] or b[q, 2] <= b[p, 0] or b[p, 3] <= b[q, 1] or b[q, 3] <= b[p, 1]


def test_held_out_pairs_only_in_test_and_digits_never_shared(splits):
    held = held_out_pairs(PARAMS["held_out"])
    counts = {name: split_counts(s, held) for name, s in splits.items()}
    assert counts["train"]["held_out_objects"] == counts["val"]["held_out_objects"] == 0
    assert counts["test"]["held_out_objects"] > 0
    present = [(d, c) for d, c in held if counts["test"]["per_pair"][f"{d}_{COLOURS[c].name}"] > 0]
    assert len(present) >= 4  # 200 test scenes, ~1/70 of objects per pair
    tr, va = (set(splits[k].source_index[splits[k].digits >= 0]) for k in ("train", "val"))
    assert not tr & va  # val digits are held apart from train digits (test digits are another MNIST split)
    assert sum(counts["train"]["objects_per_scene"].values()) == PARAMS["n_train"]


def test_two_runs_are_byte_identical(mnist, splits, tmp_path):
    again = build_splits(*mnist, PARAMS)
    for name in splits:
        save_scenes(tmp_path / f"a_{name}.npz", splits[name])
        save_scenes(tmp_path / f"b_{name}.npz", again[name])
        assert (tmp_path / f"a_{name}.npz").read_bytes() == (tmp_path / f"b_{name}.npz").read_bytes()
    loaded = load_scenes(tmp_path / "a_train.npz")
    assert all((getattr(loaded, k) == getattr(splits["train"], k)).all() for k in loaded.arrays())
    other = build_splits(*mnist, {**PARAMS, "seed": 1})
    assert (other["train"].images != splits["train"].images).any()


def _obj(digit, colour, cell):
    x, y = (cell % 2) * 32 + 5, (cell // 2) * 32 + 5
    return SceneObject(digit, COLOURS.index(next(c for c in COLOURS if c.name == colour)), cell, (x, y, x + 15, y + 20))


def test_captions_templates_and_skipped_fields():
    red3, blue7 = _obj(3, "red", 0), _obj(7, "blue", 1)  # same row, different columns
    assert canonical_caption([red3, blue7]) == "a red 3 and a blue 7"
    assert render("{left} to the left of {right}", [blue7, red3]) == "a red 3 to the left of a blue 7"
    opts = applicable_templates([red3, blue7], DEFAULT_TEMPLATES)
    assert opts == ["{o1} and {o2}", "{left} to the left of {right}", "{right} to the right of {left}"]  # no top/bottom
    green1 = _obj(1, "green", 2)
    assert render("{bottom} below {top}", [red3, green1]) == "a green 1 below a red 3"
    assert canonical_caption([red3, blue7, green1]) == "a red 3, a blue 7 and a green 1"
    rng = np.random.default_rng(0)
    seen = {random_caption([red3, blue7], DEFAULT_TEMPLATES, rng) for _ in range(60)}
    assert seen == {"a red 3 and a blue 7", "a red 3 to the left of a blue 7", "a blue 7 to the right of a red 3"}
    with pytest.raises(TemplateError, match="top"):
        render("{top} above {bottom}", [red3, blue7])


def test_unknown_field_is_an_error_naming_it():
    bad = {**DEFAULT_TEMPLATES, "two": ["{o1} and {o2}", "{o1} near {middle}"]}
    with pytest.raises(TemplateError, match=r"'\{o1\} near \{middle\}'.*\{middle\}"):
        check_templates(bad)
    with pytest.raises(TemplateError, match=r"\{o3\}"):
        check_templates({**DEFAULT_TEMPLATES, "two": ["{o1}, {o2} and {o3}"]})
    with pytest.raises(TemplateError, match="middle"):
        applicable_templates([_obj(3, "red", 0), _obj(7, "blue", 1)], bad)


def test_hard_negatives_really_differ():
    red3, blue7, red7, blue3 = _obj(3, "red", 0), _obj(7, "blue", 1), _obj(7, "red", 3), _obj(3, "blue", 2)
    negs = hard_negatives([red3, blue7], "{o1} and {o2}")
    assert negs == ["a blue 3 and a red 7", "a red 7 and a blue 3"]
    rel = hard_negatives([red3, blue7], "{left} to the left of {right}")
    assert "a blue 7 to the left of a red 3" in rel
    assert hard_negatives([red3, red7], "{o1} and {o2}") == []  # colour swap of equal colours, digit swap = same set
    assert hard_negatives([red3, red7], "{top} above {bottom}") == ["a red 7 above a red 3"]
    assert hard_negatives([red3], "{o1}") == []
    # every negative of random scenes differs in meaning from the caption
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(2, 4))
        cells = sorted(rng.choice(4, k, replace=False))
        objs = [_obj(int(rng.integers(2)) + 3, ["red", "blue"][int(rng.integers(2))], int(c)) for c in cells]
        for t in applicable_templates(objs, DEFAULT_TEMPLATES):
            truth = re.findall(r"a \w+ \d", render(t, objs))
            for neg in hard_negatives(objs, t):
                phrases = re.findall(r"a \w+ \d", neg)
                if "{left}" in t or "{top}" in t:  # a relation: the ordered pair must differ
                    assert phrases != truth
                else:  # a set of objects: the multiset must differ
                    assert sorted(phrases) != sorted(truth)
    assert meaning([red3, blue7], {}) == meaning([blue7, red3], {})
    assert meaning([red3, blue7], {}) != meaning([blue3, red7], {})


@pytest.mark.parametrize("problem", ["missing", "shape", "dtype"])
def test_bad_scenes_file_names_file_and_key(splits, tmp_path, problem):
    arrays = splits["val"].arrays()
    if problem == "missing":
        del arrays["boxes"]
    elif problem == "shape":
        arrays["masks"] = arrays["masks"][:, :32]
    else:
        arrays["digits"] = arrays["digits"].astype(np.int64)
    path = tmp_path / "bad.npz"
    np.savez_compressed(path, **arrays)
    key = {"missing": "boxes", "shape": "masks", "dtype": "digits"}[problem]
    with pytest.raises(ScenesError, match=rf"{path}.*'{key}'"):
        load_scenes(path)
    with pytest.raises(ScenesError, match="not found"):
        load_scenes(tmp_path / "none.npz")


def test_bad_composition_params(mnist):
    x, y = mnist[:2]
    with pytest.raises(ValueError, match="object_probs"):
        compose_scenes(x, y, 5, np.random.default_rng(0), object_probs=[0.5, 0.6, 0.1])
    with pytest.raises(ValueError, match="size_range"):
        compose_scenes(x, y, 5, np.random.default_rng(0), size_range=(22, 40))
    with pytest.raises(ValueError, match="purple"):
        held_out_pairs([[0, "purple"]])


def test_shift_keeps_pixels(splits):
    test, shifted = splits["test"], splits["test_shifted"]
    for i in range(20):
        for j in range(test.n_objects[i]):
            a, b = test.boxes[i, j], shifted.boxes[i, j]
            pa = test.images[i, a[1] : a[3], a[0] : a[2]] * (test.masks[i, a[1] : a[3], a[0] : a[2]] == j + 1)[..., None]
            pb = shifted.images[i, b[1] : b[3], b[0] : b[2]] * (shifted.masks[i, b[1] : b[3], b[0] : b[2]] == j + 1)[..., None]
            assert (pa == pb).all()
    assert len(shift_scenes(test.subset(slice(0, 3)), np.random.default_rng(0))) == 3
