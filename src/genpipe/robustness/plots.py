"""Figures of attack_classifiers: budget curves, the transfer matrix, adversarial examples."""

from __future__ import annotations

from typing import Any

import numpy as np

from genpipe.pipeline.plots import GRAY, plt
from genpipe.robustness.classifiers import labels

LABELS = {"resnet": "ResNet", "vit": "ViT", "plain": "CLIP", "tecoa": "TeCoA", "prompt": "visual prompt", "lora": "LoRA"}
STYLE = {"fgsm": "--", "pgd": "-"}


def _name(model: str) -> str:
    return LABELS.get(model, model)


def plot_budget_curves(rows: list[dict[str, Any]], metrics: dict[str, Any], title: str = "Fashion-MNIST: accuracy under an L∞ budget ε",
                       default_eps: float | None = None, measure: str = "test accuracy") -> plt.Figure:
    """Accuracy vs eps per model (one colour each): FGSM dashed, PGD solid, N in the legend. The grid's
    points are evenly spaced (most of the fall happens below 0.05); a raw curve (the attack at exactly
    eps) is drawn faintly only where it differs from the budget curve."""
    fig, ax = plt.subplots(figsize=(7.2, 5.2))
    eps = [r["eps"] for r in rows]
    pos = list(range(len(eps)))
    q = metrics["pgd"]
    raw_drawn = False
    for i, (model, m) in enumerate(metrics["models"].items()):
        color = plt.get_cmap("tab10")(i)
        for a in ("fgsm", "pgd"):
            curve = [100 * r[f"{model}_{a}"] for r in rows]
            what = "FGSM" if a == "fgsm" else f"PGD-{q['steps']}" + (" (random start)" if q["random_start"] else "")
            ax.plot(pos, curve, STYLE[a], marker="o" if a == "pgd" else "s", ms=4, color=color,
                    label=f"{_name(model)}, {what}, N = {m[a]['n']:,}")
            raw = [100 * r[f"{model}_{a}_raw"] for r in rows]
            if raw != curve:
                ax.plot(pos, raw, ":", color=color, alpha=0.6, lw=1, label=None if raw_drawn else "dotted: the attack at exactly ε (raw)")
                raw_drawn = True
    default_eps = metrics["transfer_eps"] if default_eps is None else default_eps
    if default_eps in eps:
        ax.axvline(eps.index(default_eps), color="gray", lw=0.8, ls="-.", alpha=0.6, label=f"default ε = {default_eps:g}")
    ax.set_xticks(pos, [f"{e:g}" for e in eps])
    labels = " vs ".join(f"{_name(k)}: {m['label']}, clean {100 * m['clean_accuracy']:.2f} %" for k, m in metrics["models"].items())
    ax.set(xlabel="ε (L∞, pixels in [0, 1]; grid points evenly spaced)", ylabel=f"{measure} under budget ε (%)", ylim=(0, 100), title=title)
    ax.text(0.5, -0.2, labels, transform=ax.transAxes, ha="center", fontsize=7, color="dimgray")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def plot_transfer(metrics: dict[str, Any]) -> plt.Figure:
    """One heatmap per attack: rows = where the images come from (clean, sign noise, each source model),
    columns = the model scoring them; cells = accuracy (%)."""
    attacks = list(metrics["transfer"])
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.2 * len(attacks) + 1.6, 3.9), squeeze=False, sharey=True)
    for k, (ax, a) in enumerate(zip(axes[0], attacks)):
        tr = metrics["transfer"][a]
        targets = list(tr["accuracy"])
        rows = [("clean", tr["clean"]), (f"random sign noise ±{tr['eps']:g}", tr["noise"])]
        rows += [(f"attacked on {_name(s)}", tr["accuracy"][s]) for s in targets]
        grid = np.array([[100 * r[t] for t in targets] for _, r in rows])
        im = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                white_box = i >= 2 and targets[i - 2] == targets[j]
                ax.text(j, i, f"{grid[i, j]:.1f} %" + ("\n(white-box)" if white_box else ""), ha="center", va="center", fontsize=9,
                        color="white" if grid[i, j] < 20 or grid[i, j] > 90 else "black")
        ax.set_xticks(range(len(targets)), [_name(t) for t in targets])
        ax.set_yticks(range(len(rows)), [r[0] for r in rows])
        ax.tick_params(axis="y", labelleft=k == 0)
        ax.set(xlabel="target model", title=f"{a.upper()}, ε = {tr['eps']:g}, N = {tr['n']:,}")
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.03, label="target's accuracy (%)")
    fig.suptitle("Transfer: images made on the source (rows), scored by the target (columns)", fontsize=10)
    return fig


def plot_examples(panels: list[dict[str, Any]], classes: list[str], eps: float) -> plt.Figure:
    """Per example: clean, FGSM and PGD images at eps, and the PGD perturbation, with the model's predictions."""
    if not panels:
        fig, ax = plt.subplots(figsize=(5, 1.5))
        ax.text(0.5, 0.5, f"no test image right when clean and wrong under PGD at ε = {eps:g}", ha="center", va="center")
        ax.axis("off")
        return fig
    fig, axes = plt.subplots(len(panels), 4, figsize=(6.6, 1.85 * len(panels)), squeeze=False)
    for i, p in enumerate(panels):
        cells = (
            (p["clean"], f"{_name(p['model'])}: clean\n{classes[p['label']]}", GRAY, False),
            (p["fgsm"], f"FGSM: {classes[p['pred_fgsm']]}", GRAY, p["pred_fgsm"] != p["label"]),
            (p["pgd"], f"PGD: {classes[p['pred_pgd']]}", GRAY, p["pred_pgd"] != p["label"]),
            (p["pgd"] - p["clean"], f"PGD − clean (±{eps:g})", {"cmap": "seismic", "vmin": -eps, "vmax": eps}, False),
        )
        for j, (img, title, kw, wrong) in enumerate(cells):
            ax = axes[i, j]
            ax.imshow(img, **kw)
            ax.set_title(title, fontsize=7, color="red" if wrong else "black")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"Adversarial examples at ε = {eps:g} (red: misclassified)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_scene_examples(fig_data: dict[str, Any], eps: float, k: int) -> plt.Figure:
    """The first ``k`` one-object test scenes (top row, true digit) and each model's PGD image at eps (one row per
    model, its prediction above; red: wrong). The perturbation is what each model's own attack found."""
    x, y, adv, models = fig_data["x"], fig_data["y"], fig_data["adv"], fig_data["zero_shots"]
    k = min(k, len(next(iter(adv.values()))["pgd"]))
    fig, axes = plt.subplots(1 + len(models), k, figsize=(1.3 * k + 1.6, 1.45 * (1 + len(models))), squeeze=False)
    rows = [("clean", x[:k], y[:k])] + [(name, adv[name]["pgd"][:k], labels(zs, adv[name]["pgd"][:k])) for name, zs in models.items()]
    for r, (name, images, pred) in enumerate(rows):
        for c in range(k):
            ax = axes[r, c]
            ax.imshow(images[c].permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            wrong = r > 0 and int(pred[c]) != int(y[c])
            ax.set_title(f"{'digit' if r == 0 else 'says'} {int(pred[c])}", fontsize=7, color="red" if wrong else "black")
        axes[r, 0].set_ylabel(_name(name), rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"PGD at ε = {eps:g} against each model (red: misclassified)", fontsize=9)
    fig.subplots_adjust(wspace=0.08, hspace=0.35, left=0.16)
    return fig
