"""Stage evaluate_clip: retrieval, zero-shot digit/colour, and binding accuracy on the test scenes.

- **Retrieval** among the first ``n_retrieval`` test scenes and their canonical captions:
  image->text and text->image recall@1/5, where a retrieved caption (image) counts when it
  describes the same objects as the query's scene (same multiset of (digit, colour)).
- **Zero-shot** on single-object scenes: digit (10-way) and colour (7-way). A class's text
  embedding is the mean of the normalised embeddings of every one-object caption of that class
  (digit d: "a <c> d" over the 7 colours c, and over the one-object templates): prompt
  ensembling, no label of the scene used.
- **Binding** on two-object scenes (ARO, Yuksekgonul et al., ICLR 2023): the share of scenes
  whose true caption scores above (a) the same caption with the two objects' colours swapped
  (canonical template) and (b) a relation caption with the relation reversed (every relation
  template that applies; counted per scene and template). Pairs whose swap keeps the meaning
  (equal colours, identical objects) are skipped, as ``captions.hard_negatives`` skips them.

Each metric is also reported on the **held-out pairs**: scenes with an object whose (digit,
colour) pair never occurs in training (``make_scenes.held_out``), with its N.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from genpipe.clip import model as clip_model
from genpipe.pipeline import io
from genpipe.pipeline.plots import save_figure
from genpipe.scenes import captions
from genpipe.scenes.dataset import COLOUR_NAMES, SceneObject, Scenes, load_scenes


@dataclass
class Scorer:
    """A CLIP with its input preprocessing: images (uint8 (N, H, W, 3)) and texts to unit vectors."""

    model: torch.nn.Module
    size: int = clip_model.IMAGE_SIZE
    mean: Sequence[float] = tuple(clip_model.PREPROCESS["mean"])
    std: Sequence[float] = tuple(clip_model.PREPROCESS["std"])
    context_length: int = 16
    batch_size: int = 500

    @torch.no_grad()
    def images(self, images: np.ndarray) -> torch.Tensor:
        out = [self.model.encode_image(clip_model.preprocess(torch.from_numpy(images[b : b + self.batch_size]), self.size, self.mean, self.std),
                                       normalize=True) for b in range(0, len(images), self.batch_size)]
        return torch.cat(out).float()  # (N, D)

    @torch.no_grad()
    def texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = clip_model.tokenize(list(texts), self.context_length)
        out = [self.model.encode_text(tokens[b : b + self.batch_size], normalize=True) for b in range(0, len(tokens), self.batch_size)]
        return torch.cat(out).float()  # (T, D)


def scene_key(objects: Sequence[SceneObject]) -> tuple:
    """What a set caption describes: the multiset of (digit, colour)."""
    return tuple(sorted(Counter((o.digit, o.colour) for o in objects).items()))


def has_held_out(objects: Sequence[SceneObject], held_out: set[tuple[int, int]]) -> bool:
    return any((o.digit, o.colour) in held_out for o in objects)


def _rate(hits: np.ndarray) -> float | None:
    return round(float(np.mean(hits)), 4) if len(hits) else None


def retrieval(sim: np.ndarray, keys: list[tuple], ks: Sequence[int] = (1, 5)) -> dict[str, np.ndarray]:
    """Per-query hits of image->text (rows) and text->image (columns) recall@k, same-objects rule."""
    ids: dict[tuple, int] = {}
    k_arr = np.array([ids.setdefault(k, len(ids)) for k in keys])
    same = k_arr[:, None] == k_arr[None, :]  # (N, N) scene i and caption j describe the same objects
    out = {}
    order_i2t = np.argsort(-sim, axis=1, kind="stable")  # captions ranked per image
    order_t2i = np.argsort(-sim.T, axis=1, kind="stable")  # images ranked per caption
    rows = np.arange(len(sim))[:, None]
    for k in ks:
        out[f"i2t_r{k}"] = same[rows, order_i2t[:, :k]].any(axis=1)
        out[f"t2i_r{k}"] = same[rows, order_t2i[:, :k]].any(axis=1)
    return out


def zero_shot_classes(scorer: Scorer, templates: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt-ensembled class embeddings: digits (10, D) and colours (7, D)."""
    texts, digit_of, colour_of = [], [], []
    for d in range(10):
        for c in range(len(COLOUR_NAMES)):
            obj = [SceneObject(d, c, 0, (0, 0, 1, 1))]
            for t in templates:
                texts.append(captions.render(t, obj))
                digit_of.append(d)
                colour_of.append(c)
    emb = scorer.texts(texts)  # (70 x templates, D)
    d_idx, c_idx = torch.tensor(digit_of), torch.tensor(colour_of)
    digits = torch.stack([emb[d_idx == d].mean(0) for d in range(10)])
    colours = torch.stack([emb[c_idx == c].mean(0) for c in range(len(COLOUR_NAMES))])
    return torch.nn.functional.normalize(digits, dim=-1), torch.nn.functional.normalize(colours, dim=-1)


def colour_swap(objects: Sequence[SceneObject], template: str) -> str | None:
    """The caption with the two objects' colours swapped, None when that keeps the meaning."""
    a, b = objects
    swapped = captions.render(template, [a._replace(colour=b.colour), b._replace(colour=a.colour)])
    return swapped if swapped in captions.hard_negatives(objects, template) else None


def relation_reversed(objects: Sequence[SceneObject], template: str) -> str | None:
    """A relation caption with the relation reversed (each role's object in the opposite role)."""
    names = captions.template_fields(template)
    rev = captions.render(template.format(**{f: "{" + captions.RELATIONS.get(f, f) + "}" for f in names}), objects)
    return rev if rev in captions.hard_negatives(objects, template) else None


def binding_pairs(scenes: Scenes, idx: np.ndarray, templates: Mapping[str, Sequence[str]]) -> dict[str, list[tuple[int, str, str]]]:
    """(scene, true caption, negative) for the colour-swap and relation-reversal tests."""
    out: dict[str, list[tuple[int, str, str]]] = {"colour": [], "relation": []}
    canonical = templates["two"][0]
    rel_templates = [t for t in templates["two"] if any(f in captions.RELATIONS for f in captions.template_fields(t))]
    for i in idx:
        objs = scenes.objects(int(i))
        neg = colour_swap(objs, canonical)
        if neg is not None:
            out["colour"].append((int(i), captions.render(canonical, objs), neg))
        have = captions.field_objects(objs)
        for t in rel_templates:
            if all(f in have for f in captions.template_fields(t)):
                neg = relation_reversed(objs, t)
                if neg is not None:
                    out["relation"].append((int(i), captions.render(t, objs), neg))
    return out


def binding_hits(scorer: Scorer, img: torch.Tensor, pairs: list[tuple[int, str, str]]) -> np.ndarray:
    if not pairs:
        return np.zeros(0, bool)
    idx = torch.tensor([p[0] for p in pairs])
    pos, neg = scorer.texts([p[1] for p in pairs]), scorer.texts([p[2] for p in pairs])
    return ((img[idx] * pos).sum(-1) > (img[idx] * neg).sum(-1)).numpy()


def benchmark(scorer: Scorer, scenes: Scenes, p: dict[str, Any], templates: Mapping[str, Sequence[str]],
              held_out: set[tuple[int, int]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """All metrics (overall and held-out, with N) and the arrays the figures need."""
    objects = [scenes.objects(i) for i in range(len(scenes))]
    ho = np.array([has_held_out(o, held_out) for o in objects])
    img = scorer.images(scenes.images)  # (N, D)
    metrics: dict[str, Any] = {"all": {}, "held_out": {}}

    def put(name: str, hits: np.ndarray, mask: np.ndarray) -> None:
        metrics["all"][name] = _rate(hits)
        metrics["all"][f"{name}_n"] = int(len(hits))
        metrics["held_out"][name] = _rate(hits[mask])
        metrics["held_out"][f"{name}_n"] = int(mask.sum())

    n = min(p["n_retrieval"], len(scenes))
    texts = [str(c) for c in scenes.captions[:n]]
    sim = (img[:n] @ scorer.texts(texts).T).numpy()  # (n images, n captions)
    for name, hits in retrieval(sim, [scene_key(o) for o in objects[:n]]).items():
        put(name, hits, ho[:n])

    single = np.nonzero(scenes.n_objects == 1)[0]
    digit_emb, colour_emb = zero_shot_classes(scorer, templates["one"])
    s_img = img[single]
    put("digit_accuracy", (s_img @ digit_emb.T).argmax(1).numpy() == scenes.digits[single, 0], ho[single])
    put("colour_accuracy", (s_img @ colour_emb.T).argmax(1).numpy() == scenes.colours[single, 0], ho[single])

    two = np.nonzero(scenes.n_objects == 2)[0]
    for kind, pairs in binding_pairs(scenes, two, templates).items():
        put(f"binding_{kind}", binding_hits(scorer, img, pairs), ho[[q[0] for q in pairs]] if pairs else np.zeros(0, bool))
    return metrics, {"sim": sim, "texts": texts}


def plot_similarity(scenes: Scenes, sim: np.ndarray, k: int, title: str) -> plt.Figure:
    """Cosine similarity of the first ``k`` scenes (columns, thumbnails) and their captions (rows)."""
    k = min(k, len(sim))
    fig = plt.figure(figsize=(0.55 * k + 3.6, 0.42 * k + 1.4))
    grid = fig.add_gridspec(2, 1, height_ratios=[1, 0.42 * k / 0.55], hspace=0.02)
    top = grid[0].subgridspec(1, k, wspace=0.05)
    for j in range(k):
        ax = fig.add_subplot(top[j])
        ax.imshow(scenes.images[j])
        ax.set_axis_off()
    ax = fig.add_subplot(grid[1])
    im = ax.imshow(sim[:k, :k].T, cmap="viridis", aspect="auto")
    ax.set_yticks(range(k), [str(c) for c in scenes.captions[:k]], fontsize=7)
    ax.set_xticks(range(k), [str(j) for j in range(k)], fontsize=7)
    ax.set_xlabel("scene")
    fig.colorbar(im, ax=ax, fraction=0.03, label="cosine similarity")
    fig.suptitle(title, fontsize=10)
    return fig


def plot_retrieval(scenes: Scenes, sim: np.ndarray, queries: Sequence[int], k: int, title: str) -> plt.Figure:
    """Text->image: per query caption, the top-``k`` scenes (green title: same objects as the query)."""
    keys = [scene_key(scenes.objects(i)) for i in range(len(sim))]
    fig, axes = plt.subplots(len(queries), k, figsize=(1.25 * k + 2.6, 1.3 * len(queries)), squeeze=False)
    for r, q in enumerate(queries):
        order = np.argsort(-sim[:, q], kind="stable")[:k]
        for c, i in enumerate(order):
            ax = axes[r, c]
            ax.imshow(scenes.images[i])
            ax.set_xticks([])
            ax.set_yticks([])
            ok = keys[i] == keys[q]
            for s in ax.spines.values():
                s.set_edgecolor("tab:green" if ok else "tab:red")
                s.set_linewidth(2.5)
            ax.set_title(f"{sim[i, q]:.2f}", fontsize=7, color="tab:green" if ok else "tab:red")
        axes[r, 0].set_ylabel(str(scenes.captions[q]), rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(wspace=0.06, hspace=0.3)
    return fig


def _queries(scenes: Scenes, n: int, per_count: int = 2) -> list[int]:
    counts = scenes.n_objects[:n]
    return [int(i) for c in (1, 2, 3) for i in np.nonzero(counts == c)[0][:per_count]]


def evaluate_stage(scorer: Scorer, name: str, scenes_dir: Path, out: Path, p: dict[str, Any],
                   templates: Mapping[str, Sequence[str]], held_out: Sequence[tuple[int, int]], extra: dict[str, Any],
                   figures: bool = True) -> dict[str, Any]:
    """Stage evaluate_clip for one model: metrics.json (and similarity.png, retrieval.png with ``figures``)."""
    scenes = load_scenes(scenes_dir / "test.npz")
    metrics, arrays = benchmark(scorer, scenes, p, templates, set(held_out))
    if figures:
        _figures(scenes, arrays, name, p["similarity_k"], out)
    result = {"model": name, "configured": True, **extra, "n_test": len(scenes), "held_out_pairs": [list(h) for h in held_out], **metrics}
    io.write_json(out / "metrics.json", result)
    return result


def _figures(scenes: Scenes, arrays: dict[str, Any], name: str, k: int, out: Path) -> None:
    save_figure(plot_similarity(scenes, arrays["sim"], k, f"CLIP ({name}): test scenes x their captions"), out / "similarity.png")
    save_figure(plot_retrieval(scenes, arrays["sim"], _queries(scenes, len(arrays["sim"])), 5,
                               f"CLIP ({name}): text -> image, top 5 of {len(arrays['sim'])} test scenes"), out / "retrieval.png")


def pretrained_stage(spec: dict[str, Any] | None, scenes_dir: Path, out: Path, p: dict[str, Any],
                     templates: Mapping[str, Sequence[str]], held_out: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """Stage evaluate_clip_pretrained: the same benchmark for any open_clip checkpoint (metrics.json).

    ``spec`` is ``evaluate_clip.pretrained``: null writes ``{"configured": false}`` (so both
    runners always have the output), else ``{model_name, path}`` as for ``open_clip.create_model``;
    the scenes are resized to the model's input size and normalised with its mean/std.
    """
    if spec is None:
        result = {"configured": False, "model": None, "note": "evaluate_clip.pretrained is null"}
        io.write_json(out / "metrics.json", result)
        return result
    model, pp = clip_model.load_pretrained(spec["model_name"], spec["path"])
    scorer = Scorer(model, size=pp["size"], mean=pp["mean"], std=pp["std"], context_length=pp["context_length"], batch_size=p["batch_size"])
    extra = {"model_name": spec["model_name"], "checkpoint": spec["path"], "input_size": pp["size"]}
    return evaluate_stage(scorer, spec["model_name"], scenes_dir, out, p, templates, held_out, extra, figures=False)
