"""Stage evaluate_dino: DINO's features and attention against baselines.

Features (Fashion-MNIST: train_classifier's training split as the k-NN memory / probe training set,
the 10,000 test images scored): weighted k-NN (DINO's ``eval_knn.py``: cosine, k = 20, votes
exp(s / 0.07)) and a linear probe on frozen class tokens of (a) raw pixels, (b) the randomly
initialised ViT (DINO's student before its first step), (c) the supervised ViT of train_vit,
(d) the DINO teacher of ``train_dino/fashion_mnist``.

Attention (test scenes): the class token's last-layer attention per head, thresholded to keep 60 %
of its mass, upsampled to pixels, Jaccard with the ground-truth foreground (best head and mean over
heads) and, per object, the best head's Jaccard with that object's own mask. Models: the DINO run on
the scenes, a random ViT of its shape, and, on the scenes in grey, the Fashion-MNIST DINO and the
supervised ViT (both trained on 28 x 28 clothes; the scenes resized to 56 x 56 and their position
embeddings interpolated to that grid); beside them a trivial baseline thresholding pixel intensity the same way.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from genpipe.classify.vit_stage import load_model as load_supervised
from genpipe.data import datasets as data
from genpipe.dino.evaluate import attention_jaccard, knn_predict, linear_probe, mass_mask, upsample_masks
from genpipe.dino.stages import load_backbone, scene_tensor
from genpipe.models.vit import ViT
from genpipe.pipeline import io
from genpipe.pipeline.determinism import set_determinism
from genpipe.pipeline.plots import save_figure
from genpipe.scenes.dataset import load_scenes


def _batched(model: ViT, x: torch.Tensor, batch: int, attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Class tokens (N, D) and, with ``attention``, the class token's last-layer attention to the patches (N, H, gh, gw)."""
    feats, maps = [], []
    with torch.inference_mode():
        for start in range(0, len(x), batch):
            xb = x[start : start + batch]
            f = model.forward_features(xb, return_attention=attention)
            feats.append(f.cls_token)
            if attention:
                g = xb.shape[-1] // model.config.patch_size
                maps.append(f.attention[:, :, 0, 1:].reshape(len(xb), -1, g, g))
    return torch.cat(feats), (torch.cat(maps) if attention else None)


def _accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return round((pred == y).float().mean().item(), 6)


def feature_rows(models: dict[str, ViT | None], train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                 prep: dict[str, Any], p: dict[str, Any]) -> dict[str, dict[str, float]]:
    """k-NN and linear-probe test accuracy per feature extractor (None = raw pixels)."""
    rows: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        t0 = time.perf_counter()
        if model is None:
            f_train, f_test = train[0].flatten(1), test[0].flatten(1)
        else:
            f_train, _ = _batched(model, prep[name](train[0]), p["batch_size"])
            f_test, _ = _batched(model, prep[name](test[0]), p["batch_size"])
        knn = knn_predict(f_train, train[1], f_test, k=p["knn_k"], temperature=p["knn_temperature"])
        lin = linear_probe(f_train, train[1], f_test, **p["linear"], seed=p["seed"])
        rows[name] = {"knn": _accuracy(knn, test[1]), "linear": _accuracy(lin, test[1]), "dim": int(f_train.shape[1])}
        print(f"evaluate_dino {name}: k-NN {rows[name]['knn']:.4f}, linear {rows[name]['linear']:.4f} "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return rows


def _summary(scores: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Per-head Jaccards averaged over images -> the best head, its scores, the mean over heads."""
    fg = scores["foreground"].mean(0)  # (H,)
    best = int(fg.argmax())
    per_object = scores["per_object"]  # (B, H, K)
    best_own = torch.nanmean(per_object[:, best, :]).item()
    # do heads separate objects? share of 2+-object scenes whose objects' best heads differ
    present = ~per_object[:, 0, :].isnan()  # (B, K) the scene holds object k
    n_obj = present.sum(1)
    multi = n_obj >= 2
    heads_of = per_object.nan_to_num(-1.0).argmax(1)  # (B, K) best head per object
    distinct = [len(set(heads_of[i, : n_obj[i]].tolist())) > 1 for i in torch.nonzero(multi).flatten().tolist()]
    return {"best_head": best, "best_head_jaccard": round(fg[best].item(), 6), "mean_over_heads": round(fg.mean().item(), 6),
            "per_head": [round(v, 6) for v in fg.tolist()], "per_object_best_head": round(best_own, 6),
            "per_object_any_head": round(torch.nanmean(per_object.nan_to_num(-1.0).max(1).values.where(present,
                                                                                                         torch.tensor(math.nan))).item(), 6),
            "objects_on_different_heads": round(float(np.mean(distinct)) if distinct else math.nan, 6)}


def attention_rows(models: dict[str, tuple[ViT, Any]], images: torch.Tensor, objects: torch.Tensor,
                   p: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    rows, maps = {}, {}
    for name, (model, prep) in models.items():
        _, att = _batched(model, prep(images), p["batch_size"], attention=True)
        assert att is not None
        rows[name] = _summary(attention_jaccard(att, objects, p["attention_keep"]))
        maps[name] = att
        print(f"evaluate_dino attention {name}: best head {rows[name]['best_head']} Jaccard {rows[name]['best_head_jaccard']:.3f}, "
              f"mean over heads {rows[name]['mean_over_heads']:.3f}", file=sys.stderr)
    # the trivial baseline: each pixel's intensity (brightest channel) as the map, kept to the same share of its mass
    rows["pixel_threshold"] = _summary(attention_jaccard(images.amax(1)[:, None] + 1e-6, objects, p["attention_keep"]))
    return rows, maps


def plot_attention(images: torch.Tensor, maps: dict[str, torch.Tensor], rows: dict[str, Any], keep: float, n: int) -> plt.Figure:
    """Per scene and model: the image, then each head's attention over it (the best head's mask outlined)."""
    names = list(maps)
    heads = max(m.shape[1] for m in maps.values())
    fig, axes = plt.subplots(n * len(names), heads + 1, figsize=(1.3 * (heads + 1), 1.3 * n * len(names)), squeeze=False)
    for i in range(n):
        img = images[i].permute(1, 2, 0).numpy()
        for r, name in enumerate(names):
            row = axes[i * len(names) + r]
            row[0].imshow(img)
            row[0].set_ylabel(name.replace("_", "\n"), rotation=0, ha="right", va="center", fontsize=7)
            att = maps[name][i]  # (H, g, g)
            kept = upsample_masks(mass_mask(att.flatten(1), keep).reshape(att.shape), img.shape[0])
            for h in range(heads):
                ax = row[h + 1]
                if h < att.shape[0]:
                    ax.imshow(img)  # the attention over the scene, so one sees which digit a head looks at
                    ax.imshow(att[h].numpy(), cmap="inferno", alpha=0.65, extent=(0, img.shape[1], img.shape[0], 0))
                    if h == rows[name]["best_head"]:
                        ax.contour(kept[h].numpy(), levels=[0.5], colors="cyan", linewidths=0.8)
                    if i == 0 and r == 0:
                        ax.set_title(f"head {h}", fontsize=7)
                else:
                    ax.axis("off")
            for ax in row:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle(f"class-token attention, last layer, per head (cyan: best head's {keep:.0%}-mass mask)", fontsize=9)
    fig.tight_layout()
    return fig


def run(data_root: Path, scenes_dir: Path, dino_dirs: dict[str, Path], vit_dir: Path, out: Path, p: dict[str, Any],
        dino_seed: int) -> dict[str, Any]:
    set_determinism(p["seed"])
    t0 = time.perf_counter()
    # -- features on Fashion-MNIST --
    spec = data.get_spec("fashion_mnist")
    x_all, y_all = data.load_split(spec, data_root, train=True)
    x_test, y_test = data.load_split(spec, data_root, train=False)
    tr_idx, _ = data.train_val_split(len(x_all), p["val_size"], dino_seed)
    tr_idx = tr_idx[: p["n_train"]] if p["n_train"] else tr_idx
    n_test = p["n_test"] or len(x_test)
    train = (x_all[tr_idx].float().div(255).unsqueeze(1), y_all[tr_idx].long())
    test = (x_test[:n_test].float().div(255).unsqueeze(1), y_test[:n_test].long())

    dino_f, dino_f_config = load_backbone(dino_dirs["fashion_mnist"])
    dino_s, _ = load_backbone(dino_dirs["scenes"])
    supervised, sup_config = load_supervised(vit_dir)
    normalise = lambda x: (x - sup_config["input_mean"]) / sup_config["input_std"]  # noqa: E731  (train_vit's input)
    randoms = {}
    for name, trained in (("fashion_mnist", dino_f), ("scenes", dino_s)):
        torch.manual_seed(dino_seed)  # DinoTrainer's initialisation: the student before its first step
        randoms[name] = ViT(trained.config).eval()
    same = lambda x: x  # noqa: E731
    feats = feature_rows({"raw_pixels": None, "random_vit": randoms["fashion_mnist"], "supervised_vit": supervised, "dino": dino_f},
                         train, test, {"random_vit": same, "supervised_vit": normalise, "dino": same}, p)

    # -- attention on the test scenes --
    scenes = load_scenes(scenes_dir / "test.npz").subset(slice(0, p["n_scenes"]))
    images = scene_tensor(scenes.images)
    objects = torch.from_numpy(scenes.masks.astype(np.int64))
    side = 2 * dino_f.config.image_size  # 56: a multiple of any patch size of a 28 x 28 model

    def grey(x: torch.Tensor) -> torch.Tensor:
        """Scenes for the Fashion-MNIST models: the brightest channel (the digits' ink on black), resized to ``side``."""
        return F.interpolate(x.amax(1, keepdim=True), size=(side, side), mode="bilinear", antialias=True, align_corners=False)

    att_models = {"dino_scenes": (dino_s, same), "random_vit": (randoms["scenes"], same),
                  "dino_fashion_mnist": (dino_f, grey), "supervised_vit": (supervised, lambda x: normalise(grey(x)))}
    att, maps = attention_rows(att_models, images, objects, p)

    k = max(1, p["figure_scenes"])
    multi = np.flatnonzero(scenes.n_objects >= 2)[:k]  # the figure shows scenes with several objects
    fig = plot_attention(images[multi], {n: maps[n][multi] for n in ("dino_scenes", "random_vit", "supervised_vit")}, att,
                         p["attention_keep"], len(multi))
    save_figure(fig, out / "attention.png")

    train_metrics = {name: io.read_json(d / "metrics.json") for name, d in dino_dirs.items()}
    metrics = {
        "fashion_mnist": {"n_train": len(train[1]), "n_test": len(test[1]), "knn_k": p["knn_k"], **feats,
                          "dino_epochs": dino_f_config["epochs"], "dino_seconds": train_metrics["fashion_mnist"]["seconds"],
                          "knn_gain_over_random": round(feats["dino"]["knn"] - feats["random_vit"]["knn"], 6),
                          "knn_gain_over_raw": round(feats["dino"]["knn"] - feats["raw_pixels"]["knn"], 6)},
        "attention": {"n_scenes": len(images), "keep": p["attention_keep"], **att,
                      "dino_epochs": train_metrics["scenes"]["epochs"], "dino_seconds": train_metrics["scenes"]["seconds"]},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    io.write_json(out / "metrics.json", metrics)
    return metrics
