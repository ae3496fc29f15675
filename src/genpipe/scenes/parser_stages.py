"""Stages train_scene_parser and evaluate_scene_parser, and loading the trained parser.

``train_stage`` trains :class:`~genpipe.scenes.parser.SceneParser` on the train scenes (validation
on the val scenes each epoch) and writes model.safetensors + config.json, curves.tsv and
metrics.json. ``evaluate_stage`` parses test, test_shifted, the test objects of held-out (digit,
colour) pairs, blank images and noise-only images, and writes metrics.json, per_class.tsv and the
figures confusion.png and boxes.png. Later stages load the judge with :func:`load_parser`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genpipe.pipeline.determinism import set_determinism
from genpipe.pipeline.io import load_state, save_model, write_json, write_tsv
from genpipe.pipeline.plots import plt, save_figure
from genpipe.scenes import detect as D
from genpipe.scenes.dataset import COLOUR_NAMES, Scenes, load_scenes
from genpipe.scenes.geneval import Prompt, score
from genpipe.scenes.parser import ParserConfig, SceneParser

ARCH_KEYS = ("width", "dilations", "head_width", "norm", "gn_groups")


def _truth(s: Scenes) -> D.Truth:
    return D.to_truth(s.digits, s.colours, s.boxes)


def load_parser(model_dir: str | Path) -> SceneParser:
    """The trained scene parser of ``model_dir`` (model.safetensors + config.json), in eval mode."""
    model_dir = Path(model_dir)
    state, config = load_state(model_dir / "model.safetensors", model_dir / "config.json")
    model = SceneParser(ParserConfig.from_dict({k: config[k] for k in ARCH_KEYS}))
    model.load_state_dict(state)
    return model.to(memory_format=torch.channels_last).eval()


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in d.items()}


def train_stage(scenes_dir: Path, out: Path, p: dict[str, Any]) -> dict[str, Any]:
    """Train on ``<scenes_dir>/train.npz``, validate on val.npz; write the model, curves and metrics."""
    set_determinism(p["seed"])
    t0 = time.perf_counter()
    train = load_scenes(scenes_dir / "train.npz")
    val = load_scenes(scenes_dir / "val.npz")
    if p["train_limit"]:
        train = train.subset(slice(0, p["train_limit"]))
    val = val.subset(slice(0, p["val_limit"]))
    cfg = ParserConfig(width=p["width"], dilations=tuple(p["dilations"]), head_width=p["head_width"], norm=p["norm"], gn_groups=p["gn_groups"])
    print(f"train_scene_parser: {len(train)} train scenes, {len(val)} val scenes, config {cfg.to_dict()}", file=sys.stderr)
    model, rows, info = D.train(cfg, D.TrainData(train.images, train.masks, _truth(train)), (val.images, _truth(val)), p,
                                log=lambda r: print(f"train_scene_parser: {r}", file=sys.stderr))
    config = cfg.to_dict() | {"stride": 4, "image_size": 64}
    save_model(model, config, out / "model.safetensors", out / "config.json")
    write_tsv(out / "curves.tsv", rows)
    t_val = time.perf_counter()
    vm = D.detection_metrics(D.parse(model, val.images, p["threshold"]), _truth(val))
    vm.pop("confusion")
    metrics = {
        "val": _rounded(vm),
        "parameters": D.count_params(model),
        "train_scenes": len(train),
        "epochs": p["epochs"],
        "precision": p["precision"],
        "threads": torch.get_num_threads(),
        **info,
        "val_seconds": round(time.perf_counter() - t_val, 2),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(out / "metrics.json", metrics)
    return metrics


# ----------------------------------------------------------------------------- evaluation


def null_images(n_blank: int, n_noise: int, noise_max: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Blank black images and noise-only images: each pixel channel U(0, a), a ~ U(0, noise_max) per image."""
    rng = np.random.default_rng(seed)
    blank = np.zeros((n_blank, 64, 64, 3), np.uint8)
    amp = rng.random((n_noise, 1, 1, 1)) * noise_max * 255
    noise = (rng.random((n_noise, 64, 64, 3)) * amp).astype(np.uint8)
    return blank, noise


def _held_out_mask(s: Scenes, pairs: list[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(s.digits.shape, bool)
    for d, c in pairs:
        mask |= (s.digits == d) & (s.colours == c)
    return mask


def true_prompts(s: Scenes) -> list[Prompt]:
    """Each scene's objects as a prompt; two objects get the relation of their true box centres along
    the axis where they lie further apart (object 1 left_of / right_of / above / below object 2)."""
    prompts = []
    for i in range(len(s)):
        objs = s.objects(i)
        relation = None
        if len(objs) == 2:
            (ax, ay), (bx, by) = (((o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2) for o in objs)
            if abs(ax - bx) >= abs(ay - by):
                relation = "left_of" if ax < bx else "right_of"
            else:
                relation = "above" if ay < by else "below"
        prompts.append(Prompt(tuple((o.digit, o.colour) for o in objs), relation))
    return prompts


def per_class_rows(blocks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per digit and per colour: accuracy of that attribute among the true objects, per split."""
    rows = []
    for kind, names in (("digit", [str(d) for d in range(10)]), ("colour", list(COLOUR_NAMES))):
        for i, name in enumerate(names):
            row: dict[str, Any] = {"kind": kind, "class": name}
            for split, m in blocks.items():
                cm = np.array(m["confusion"][kind])
                n = int(cm[i].sum())
                row[f"{split}_n"] = n
                row[f"{split}_accuracy"] = round(float(cm[i, i] / n), 6) if n else ""
            rows.append(row)
    return rows


def confusion_figure(m: dict[str, Any], title: str) -> plt.Figure:
    """Digit and colour confusion of matched objects; 'none' = missed (column) / false positive (row)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), gridspec_kw={"width_ratios": [11, 8]})
    for ax, kind, names in ((axes[0], "digit", [str(d) for d in range(10)]), (axes[1], "colour", list(COLOUR_NAMES))):
        cm = np.array(m["confusion"][kind])
        labels = names + ["none"]
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(labels)):
            for j in range(len(labels)):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6, color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set(xlabel="predicted", ylabel="true", title=f"{kind} (row-normalised)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def boxes_figure(panels: list[tuple[str, np.ndarray, list[D.Truth | None], list[list[D.Detection]]]], per_row: int) -> plt.Figure:
    """Rows of images with true boxes (white, dashed) and detections (orange, 'digit colour score')."""
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(len(panels), per_row, figsize=(1.9 * per_row, 2.1 * len(panels)), squeeze=False)
    for r, (name, images, truths, dets) in enumerate(panels):
        for c in range(per_row):
            ax = axes[r, c]
            ax.imshow(images[c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            truth = truths[c]
            for k in range(3 if truth is not None else 0):
                if truth.digits[0, k] >= 0:
                    x0, y0, x1, y1 = truth.boxes[0, k]
                    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="white", ls="--", lw=0.8))
            for d in dets[c]:
                x0, y0, x1, y1 = d.box
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="orange", lw=1.0))
                ax.text(x0, y0 - 1, f"{d.digit} {COLOUR_NAMES[d.colour]} {d.score:.2f}", color="orange", fontsize=5, va="bottom")
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.suptitle("scene parser: true ink boxes (white, dashed) and detections (orange)")
    fig.tight_layout()
    return fig


def evaluate_stage(scenes_dir: Path, model_dir: Path, out: Path, p: dict[str, Any], held_out: list[tuple[int, int]]) -> dict[str, Any]:
    """Parse every evaluation set and write metrics.json, per_class.tsv, confusion.png and boxes.png."""
    set_determinism(p["seed"])
    t0 = time.perf_counter()
    model = load_parser(model_dir)
    splits = {name: load_scenes(scenes_dir / f"{name}.npz") for name in ("test", "test_shifted")}
    dets = {name: D.parse(model, s.images, p["threshold"], p["batch_size"]) for name, s in splits.items()}
    blocks = {name: D.detection_metrics(dets[name], _truth(s)) for name, s in splits.items()}
    test = splits["test"]
    mask = _held_out_mask(test, held_out)
    blocks["held_out"] = D.detection_metrics(dets["test"], _truth(test), object_mask=mask, with_map=False)
    blocks["held_out"]["pairs"] = [[d, COLOUR_NAMES[c]] for d, c in held_out]
    blank, noise = null_images(p["n_blank"], p["n_noise"], p["noise_max"], p["seed"])
    null_dets = {"blank": D.parse(model, blank, p["threshold"], p["batch_size"]), "noise": D.parse(model, noise, p["threshold"], p["batch_size"])}
    write_tsv(out / "per_class.tsv", per_class_rows({k: blocks[k] for k in ("test", "test_shifted")}))
    save_figure(confusion_figure(blocks["test"], f"scene parser on {len(test)} test scenes (IoU >= 0.5 matches)"), out / "confusion.png")
    k = min(p["figure_scenes"], len(test), p["n_noise"])
    one = lambda s, i: D.Truth(s.digits[i : i + 1].astype(int), s.colours[i : i + 1].astype(int), s.boxes[i : i + 1].astype(int))  # noqa: E731
    panels = [(name, s.images[:k], [one(s, i) for i in range(k)], dets[name][:k]) for name, s in splits.items()]
    panels.append(("noise", noise[:k], [None] * k, null_dets["noise"][:k]))
    save_figure(boxes_figure(panels, k), out / "boxes.png")
    metrics: dict[str, Any] = {name: _rounded({k_: v for k_, v in m.items() if k_ != "confusion"}) for name, m in blocks.items()}
    metrics |= {name: _rounded(D.false_positive_metrics(d) | {"noise_max": p["noise_max"]} if name == "noise" else D.false_positive_metrics(d))
                for name, d in null_dets.items()}
    # the GenEval-style score of real scenes prompted with their own objects: the judge's ceiling
    metrics["geneval"] = {name: score(dets[name], true_prompts(s)) for name, s in splits.items()}
    metrics["threshold"] = p["threshold"]
    metrics["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(out / "metrics.json", metrics)
    return metrics
