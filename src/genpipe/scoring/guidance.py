"""Stage evaluate_guidance: the classifier-free guidance trade-off of the DDPM, measured in two spaces.

Scores every set of sweep_guidance (one per sampler and guidance scale w) with the same
:class:`~genpipe.scoring.evaluation.Scorer` as evaluate_samples: FID in the classifier's features,
the Fréchet distance in the DINO ViT's, precision / recall / density / coverage in both, and
generation accuracy by both judges. Writes guidance.tsv (one row per w, a column per sampler and
score: a DVC plot), guidance.png (the trade-off figure of Ho & Salimans' guidance paper: fidelity
against variety as w grows) and metrics.json with, per sampler, the scale that is best for each
score and the sentences the report prints, computed from the numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genpipe.ddpm.sweep import sweep_file
from genpipe.pipeline import io
from genpipe.pipeline.plots import plt, save_figure
from genpipe.scoring import samples
from genpipe.scoring.evaluation import Scorer

# score -> (label, better): "min" or "max"
SCORES = {
    "fid": ("classifier FID", "min"),
    "fd_dino": ("DINO Fréchet distance", "min"),
    "precision_classifier": ("classifier precision", "max"),
    "recall_classifier": ("classifier recall", "max"),
    "precision_dino": ("DINO precision", "max"),
    "recall_dino": ("DINO recall", "max"),
    "coverage_dino": ("DINO coverage", "max"),
    "accuracy": ("the classifier's accuracy", "max"),
    "accuracy_judge": ("the second judge's accuracy", "max"),
}


def flat_row(m: dict[str, Any]) -> dict[str, float]:
    """The scores of one set as a flat row (keys of SCORES plus density and the judges' agreement)."""
    pr = m["prdc"]
    return {"fid": m["fid"], "fd_dino": m["dino"]["fid"], "kid": m["kid_mean"], "kid_dino": m["dino"]["kid_mean"],
            **{f"{k}_{space}": pr[space][k] for space in ("classifier", "dino") for k in ("precision", "recall", "density", "coverage")},
            "accuracy": m["generation_accuracy"], "accuracy_judge": m["generation_accuracy_judge"], "judges_agree": m["judges_agree"]}


def best_scales(rows: dict[float, dict[str, float]]) -> dict[str, float]:
    """Per score, the guidance scale where it is best (the smaller scale on a tie)."""
    out = {}
    for key, (_, better) in SCORES.items():
        sign = 1 if better == "min" else -1
        out[key] = min(rows, key=lambda w: (sign * rows[w][key], w))
    return out


def _trend(values: list[float]) -> str:
    diffs = np.diff(values)
    if (diffs < 0).all():
        return "falls"
    if (diffs > 0).all():
        return "rises"
    return "is not monotone"


def observations(sampler: str, rows: dict[float, dict[str, float]], best: dict[str, float]) -> list[str]:
    """The sentences the report prints for one sampler, every number and word chosen from the scores."""
    ws = sorted(rows)
    lo, hi = ws[0], ws[-1]
    col = lambda k: [rows[w][k] for w in ws]  # noqa: E731
    out = [f"{sampler}: FID in the classifier's features is lowest at w = {best['fid']:g}, the Fréchet distance in DINO "
           f"features at w = {best['fd_dino']:g}; generation accuracy is highest at w = {best['accuracy']:g} (classifier) "
           f"and w = {best['accuracy_judge']:g} (second judge)."]
    for space in ("dino", "classifier"):
        p, r = col(f"precision_{space}"), col(f"recall_{space}")
        out.append(f"{sampler}, {space} features: from w = {lo:g} to {hi:g} precision {_trend(p)} ({p[0]:.3f} → {p[-1]:.3f}) "
                   f"and recall {_trend(r)} ({r[0]:.3f} → {r[-1]:.3f}); precision is highest at w = {best[f'precision_{space}']:g}, "
                   f"recall at w = {best[f'recall_{space}']:g}.")
    return out


def plot_tradeoff(table: dict[str, dict[float, dict[str, float]]], floors: dict[str, dict[str, float]], n: dict[str, int]) -> plt.Figure:
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    marks = dict(zip(table, ("o-", "s--", "^-.")))
    colours = dict(zip(table, ("tab:blue", "tab:orange", "tab:green")))
    for sampler, rows in table.items():
        ws = sorted(rows)
        lab = f"{sampler} (N = {n[sampler]})"
        for ax, key in ((axes[0, 0], "fid"), (axes[0, 1], "fd_dino")):
            ax.plot(ws, [rows[w][key] for w in ws], marks[sampler], color=colours[sampler], label=lab)
        c = colours[sampler]
        axes[0, 2].plot(ws, [100 * rows[w]["accuracy"] for w in ws], marks[sampler], color=c, label=f"{sampler}, classifier")
        axes[0, 2].plot(ws, [100 * rows[w]["accuracy_judge"] for w in ws], marks[sampler], color=c, alpha=0.45, label=f"{sampler}, second judge")
        for ax, space in ((axes[1, 0], "classifier"), (axes[1, 1], "dino")):
            ax.plot(ws, [rows[w][f"precision_{space}"] for w in ws], marks[sampler], color=c, label=f"{sampler} precision")
            ax.plot(ws, [rows[w][f"recall_{space}"] for w in ws], marks[sampler], color=c, alpha=0.45, label=f"{sampler} recall")
        p, r = [rows[w]["precision_dino"] for w in ws], [rows[w]["recall_dino"] for w in ws]
        axes[1, 2].plot(r, p, marks[sampler], color=c, label=sampler)
        for w, x, y in zip(ws, r, p):
            axes[1, 2].annotate(f"{w:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    for ax, key, title in ((axes[0, 0], "fid", "FID, classifier features"), (axes[0, 1], "fd_dino", "Fréchet distance, DINO features")):
        ax.axhline(floors[key], color="grey", ls=":", label="real vs real")
        ax.set(xlabel="guidance scale w", yscale="log", title=title)
    axes[0, 2].set(xlabel="guidance scale w", ylabel="%", title="generation accuracy (two judges)")
    for ax, space in ((axes[1, 0], "classifier"), (axes[1, 1], "dino")):
        for k in ("precision", "recall"):
            ax.axhline(floors[f"{k}_{space}"], color="grey", ls=":", lw=0.8)
        ax.set(xlabel="guidance scale w", ylim=(0, 1.02), title=f"precision (solid) / recall, {space}")
    axes[1, 2].plot([floors["recall_dino"]], [floors["precision_dino"]], "k*", ms=10, label="real vs real")
    axes[1, 2].set(xlabel="recall (DINO)", ylabel="precision (DINO)", title="fidelity vs variety, DINO (labels: w)")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Classifier-free guidance on MNIST: fidelity against variety")
    fig.tight_layout()
    return fig


def default_verdict(best: dict[str, dict[str, float]], default: float) -> str:
    """Which scores sample_ddpm's guidance scale is the best scale for, per sampler; the others grouped by their best scale."""
    parts = []
    for sampler, b in best.items():
        at = lambda w: [label for k, (label, _) in SCORES.items() if b.get(k) == w]  # noqa: E731
        yes, others = at(default), {w: at(w) for w in sorted(set(b.values()) - {default})}
        elsewhere = "; ".join(f"at w = {w:g} for {', '.join(names)}" for w, names in others.items())
        parts.append(f"{sampler}, best for {', '.join(yes) or 'none of the scores'}" + (f" (the best is {elsewhere})" if elsewhere else ""))
    return f"sample_ddpm's default w = {default:g} is, for " + "; for ".join(parts) + "."


def evaluate_guidance(sweep_root: Path, samplers: list[str], classifier_dir: Path, dino_dir: Path, judge_dir: Path,
                      reference_dir: Path, out: Path, p: dict[str, Any], default_guidance: float) -> dict[str, Any]:
    scorer = Scorer(classifier_dir, dino_dir, judge_dir, reference_dir, p)
    table: dict[str, dict[float, dict[str, float]]] = {}
    timing, n, floors = {}, {}, {}
    for sampler in samplers:
        meta = io.read_json(sweep_root / sampler / "metrics.json")
        table[sampler], timing[sampler], n[sampler] = {}, meta["scales"], meta["n"]
        for w in meta["guidance"]:
            images, labels, dataset = samples.load(sweep_root / sampler / "samples" / sweep_file(w))
            if dataset != scorer.dataset:
                raise ValueError(f"{sweep_root / sampler}: {dataset} samples, but the scorer is for {scorer.dataset}")
            m = scorer.score(images, labels)
            table[sampler][float(w)] = {**flat_row(m), "ms_per_sample": meta["scales"][f"{w:g}"]["ms_per_sample"]}
        floors[sampler] = {"fid": m["floor"]["fid"], "fd_dino": m["dino"]["floor"]["fid"],  # the same for every scale of a sampler
                           **{f"{k}_{s}": m["prdc"]["floor"][s][k] for s in ("classifier", "dino") for k in ("precision", "recall", "density", "coverage")},
                           "n_prdc": m["prdc"]["n"]}
    scales = sorted(next(iter(table.values())))
    if any(sorted(rows) != scales for rows in table.values()):
        raise ValueError(f"sweep_guidance: the samplers were swept over different scales: { {s: sorted(r) for s, r in table.items()} }")
    io.write_tsv(out / "guidance.tsv", [{"guidance": w, **{f"{s}_{k}": v for s in table for k, v in table[s][w].items()}} for w in scales])
    floor = floors[samplers[0]]
    save_figure(plot_tradeoff(table, floor, n), out / "guidance.png")
    best = {s: best_scales(rows) for s, rows in table.items()}
    lines = [line for s in samplers for line in observations(s, table[s], best[s])]
    if default_guidance in scales:
        lines.append(default_verdict(best, default_guidance))
    metrics = {"guidance": scales, "n": n, "floor": floors, "judge": scorer.reference["judges"]["judge"], "default_guidance": default_guidance,
               "samplers": {s: {f"{w:g}": rows[w] for w in scales} for s, rows in table.items()}, "best": best, "observations": lines}
    io.write_json(out / "metrics.json", metrics)
    return metrics
