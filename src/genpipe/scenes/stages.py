"""The make_scenes stage: train / val / test / test_shifted scenes files, metrics and a figure.

Digits never cross splits: val scenes use a seeded held-apart subset of the MNIST training
images (``val_digits`` of 60,000), train scenes the rest, test and test_shifted scenes the MNIST
test images. Held-out (digit, colour) pairs are excluded from train and val and occur naturally
in test (about 1/70 of objects per pair). Each split has its own random stream
(``SeedSequence([seed, split])``), so changing one split's size leaves the others' bytes alone.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from genpipe.data.datasets import get_spec, load_split, train_val_split
from genpipe.pipeline.io import sha256_file, write_json
from genpipe.pipeline.plots import save_figure
from genpipe.scenes.captions import check_templates
from genpipe.scenes.compose import COLOUR_NAMES, MAX_OBJECTS, compose_scenes, held_out_pairs, shift_scenes
from genpipe.scenes.dataset import Scenes, save_scenes

SPLITS = ("train", "val", "test", "test_shifted")
_STREAM = {name: i for i, name in enumerate(SPLITS)}


def _rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _STREAM[split]]))


def build_splits(train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray, test_labels: np.ndarray,
                 params: Mapping[str, Any]) -> dict[str, Scenes]:
    """The four splits from MNIST train (N, 28, 28) / test digits and the make_scenes params."""
    check_templates(params["templates"])
    held = held_out_pairs(params["held_out"])
    train_idx, val_idx = (t.numpy() for t in train_val_split(len(train_labels), params["val_digits"], params["seed"]))
    common = dict(object_probs=params["object_probs"], size_range=tuple(params["size_range"]), templates=params["templates"])
    out = {
        "train": compose_scenes(train_images, train_labels, params["n_train"], _rng(params["seed"], "train"), pool=train_idx, held_out=held, **common),
        "val": compose_scenes(train_images, train_labels, params["n_val"], _rng(params["seed"], "val"), pool=val_idx, held_out=held, **common),
        "test": compose_scenes(test_images, test_labels, params["n_test"], _rng(params["seed"], "test"), **common),
    }
    out["test_shifted"] = shift_scenes(out["test"], _rng(params["seed"], "test_shifted"))
    return out


def split_counts(scenes: Scenes, held_out: list[tuple[int, int]]) -> dict[str, Any]:
    """Counts per number of objects, colour, digit and (digit, colour) pair; held-out totals."""
    present = scenes.digits >= 0
    d, c = scenes.digits[present].astype(int), scenes.colours[present].astype(int)
    pair = np.bincount(d * len(COLOUR_NAMES) + c, minlength=10 * len(COLOUR_NAMES)).reshape(10, -1)
    is_held = np.zeros((10, len(COLOUR_NAMES)), bool)
    for hd, hc in held_out:
        is_held[hd, hc] = True
    scene_held = (present & is_held[np.maximum(scenes.digits, 0), np.maximum(scenes.colours, 0)]).any(axis=1)
    return {
        "n_scenes": len(scenes),
        "n_objects": int(present.sum()),
        "objects_per_scene": {str(k): int((scenes.n_objects == k).sum()) for k in range(1, MAX_OBJECTS + 1)},
        "per_colour": {name: int(pair[:, i].sum()) for i, name in enumerate(COLOUR_NAMES)},
        "per_digit": {str(k): int(pair[k].sum()) for k in range(10)},
        "per_pair": {f"{k}_{name}": int(pair[k, i]) for k in range(10) for i, name in enumerate(COLOUR_NAMES)},
        "held_out_objects": int(pair[is_held].sum()),
        "held_out_scenes": int(scene_held.sum()),
        "distinct_digit_images": int(len(np.unique(scenes.source_index[present]))),
    }


def plot_scenes(splits: Mapping[str, Scenes], per_split: Mapping[str, int], cols: int = 4) -> plt.Figure:
    """A grid of the first scenes of some splits, each titled with its split and caption.

    test_shifted's first scenes are test's first scenes with their objects moved.
    """
    items = [(name, i) for name, k in per_split.items() for i in range(min(k, len(splits[name])))]
    rows = -(-len(items) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, i) in zip(axes.flat, items):
        ax.imshow(splits[name].images[i], interpolation="nearest")
        ax.set_title(f"[{name}]\n" + "\n".join(textwrap.wrap(str(splits[name].captions[i]), 26)), fontsize=7.5)
    fig.suptitle("make_scenes: scenes and their canonical captions")
    fig.tight_layout()
    return fig


def make_scenes_stage(data: Path, out: Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """Write <out>/{train,val,test,test_shifted}.npz, scenes.png and (last) metrics.json."""
    spec = get_spec("mnist")
    xtr, ytr = (t.numpy() for t in load_split(spec, data, train=True))
    xte, yte = (t.numpy() for t in load_split(spec, data, train=False))
    splits = build_splits(xtr, ytr, xte, yte, params)
    held = held_out_pairs(params["held_out"])
    metrics: dict[str, Any] = {"held_out": [f"{d}_{COLOUR_NAMES[c]}" for d, c in held], "splits": {}}
    for name, scenes in splits.items():
        path = out / f"{name}.npz"
        save_scenes(path, scenes)
        metrics["splits"][name] = {**split_counts(scenes, held), "sha256": sha256_file(path), "bytes": path.stat().st_size}
    save_figure(plot_scenes(splits, {"train": 4, "val": 4, "test": 4, "test_shifted": 4}), out / "scenes.png")
    write_json(out / "metrics.json", metrics)
    return metrics
