"""The DINO tables of the report (results/report/report.md and the README's results block)."""

from __future__ import annotations

from pathlib import Path

from genpipe.pipeline.io import read_json

FEATURES = (("raw_pixels", "raw pixels"), ("random_vit", "random ViT (DINO's initialisation)"),
            ("supervised_vit", "supervised ViT (train_vit)"), ("dino", "DINO teacher (train_dino/fashion_mnist)"))
ATTENTION = (("dino_scenes", "DINO on the scenes"), ("random_vit", "random ViT"),
             ("dino_fashion_mnist", "DINO on Fashion-MNIST (scenes in grey)"), ("supervised_vit", "supervised ViT (scenes in grey)"),
             ("pixel_threshold", "pixel intensity, same 60 % rule"))


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def dino_tables(results: Path) -> str:
    m = read_json(results / "evaluate_dino" / "metrics.json")
    runs = {r: read_json(results / "train_dino" / r / "metrics.json") for r in ("fashion_mnist", "scenes")}
    f, a = m["fashion_mnist"], m["attention"]
    rows = [f"Fashion-MNIST test ({f['n_test']:,} images; k-NN memory and probe training set: {f['n_train']:,} training images):", "",
            "| features | dim | k-NN (k = 20, T = 0.07) | linear probe |", "|---|---|---|---|"]
    rows += [f"| {label} | {f[k]['dim']} | {_pct(f[k]['knn'])} | {_pct(f[k]['linear'])} |" for k, label in FEATURES]
    rows += ["", "| DINO run | images | epochs | steps | local crops | wall time | teacher entropy / log K | KL to uniform | collapsed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r, t in runs.items():
        rows.append(f"| {r} | {t['images']:,} | {t['epochs']} | {t['steps']:,} | {t['local_crops']} | {t['seconds'] / 60:.1f} min "
                    f"| {t['teacher_entropy']:.2f} / {t['log_prototypes']:.2f} | {t['kl_uniform']:.2f} | {'yes' if t['collapsed'] else 'no'} |")
    rows += ["", f"Attention vs ground-truth masks ({a['n_scenes']:,} test scenes; class token's last-layer attention per head, "
             f"{a['keep']:.0%} of its mass kept, Jaccard):", "",
             "| model | best head: foreground | mean over heads | best head: own object | any head: own object | objects on different heads |",
             "|---|---|---|---|---|---|"]
    for k, label in ATTENTION:
        s = a[k]
        rows.append(f"| {label} | {s['best_head_jaccard']:.3f} | {s['mean_over_heads']:.3f} | {s['per_object_best_head']:.3f} "
                    f"| {s['per_object_any_head']:.3f} | {_pct(s['objects_on_different_heads'])} |")
    return "\n".join(rows)
