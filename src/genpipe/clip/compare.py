"""Stage compare_clip: the CLIP variants (and a pretrained open_clip model, if configured) side by side.

Writes table.tsv (one row per model and subset, all / held-out, every metric with its N),
binding.png (binding accuracy, plain vs hard negatives, with chance and ARO's published CLIP /
NegCLIP figures as reference lines) and metrics.json with the targets checked and an
observation written from the numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from genpipe.pipeline import io
from genpipe.pipeline.plots import save_figure

VARIANTS = ("plain", "hardneg")
METRICS = ("i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5", "digit_accuracy", "colour_accuracy", "binding_colour", "binding_relation")
# Yuksekgonul et al. (ARO, ICLR 2023), Table 2: VG-Attribution / VG-Relation accuracy.
ARO = {"CLIP": {"binding_colour": 0.62, "binding_relation": 0.59}, "NegCLIP": {"binding_colour": 0.71, "binding_relation": 0.81}}
# The targets at default params: (variant, metric) -> minimum.
TARGETS = {("plain", "digit_accuracy"): 0.95, ("hardneg", "digit_accuracy"): 0.95, ("plain", "colour_accuracy"): 0.99,
           ("hardneg", "colour_accuracy"): 0.99, ("hardneg", "binding_colour"): 0.90}


def _pts(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{100 * (b - a):+.1f} points"


def _pc(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def recognition(p: dict[str, Any], h: dict[str, Any]) -> str:
    """Whether single objects are recognised (digit and colour >= 90 %): binding is about composition only then."""
    seen = min(p["digit_accuracy"], h["digit_accuracy"], p["colour_accuracy"], h["colour_accuracy"]) >= 0.9
    head = (f"Zero-shot digit accuracy {_pc(p['digit_accuracy'])} (plain) vs {_pc(h['digit_accuracy'])} (hard negatives), "
            f"colour {_pc(p['colour_accuracy'])} vs {_pc(h['colour_accuracy'])}: ")
    if seen:
        return head + "both recognise single objects, so what separates them in binding is composition."
    return head + ("digits are not yet recognised reliably, so a colour swap can be told apart only as far as the digits are: "
                   "binding is limited by recognition here, not only by composition.")


def observation(m: dict[str, dict[str, Any]]) -> str:
    """A sentence per finding, every number read from the metrics."""
    p, h = m["plain"]["all"], m["hardneg"]["all"]
    ph, hh = m["plain"]["held_out"], m["hardneg"]["held_out"]
    out = [
        f"Hard negatives move colour binding from {_pc(p['binding_colour'])} to {_pc(h['binding_colour'])} "
        f"({_pts(p['binding_colour'], h['binding_colour'])}, N = {h['binding_colour_n']}) and relation binding from "
        f"{_pc(p['binding_relation'])} to {_pc(h['binding_relation'])} ({_pts(p['binding_relation'], h['binding_relation'])}, "
        f"N = {h['binding_relation_n']}); chance is 50 %.",
        f"On scenes with a held-out (digit, colour) pair: colour binding {_pc(ph['binding_colour'])} -> {_pc(hh['binding_colour'])} "
        f"(N = {hh['binding_colour_n']}), relation {_pc(ph['binding_relation'])} -> {_pc(hh['binding_relation'])} (N = {hh['binding_relation_n']}).",
        recognition(p, h) if None not in (p["digit_accuracy"], h["digit_accuracy"]) else "",
        f"ARO (Yuksekgonul et al., 2023) measured CLIP at {_pc(ARO['CLIP']['binding_colour'])} / {_pc(ARO['CLIP']['binding_relation'])} "
        f"and NegCLIP at {_pc(ARO['NegCLIP']['binding_colour'])} / {_pc(ARO['NegCLIP']['binding_relation'])} (VG-Attribution / VG-Relation).",
    ]
    return " ".join(s for s in out if s)


def plot_binding(m: dict[str, dict[str, Any]], title: str) -> plt.Figure:
    """Grouped bars: binding (colour, relation) x (all, held-out) per model; chance and ARO lines."""
    names = list(m)
    groups = [("binding_colour", "all"), ("binding_colour", "held_out"), ("binding_relation", "all"), ("binding_relation", "held_out")]
    x = np.arange(len(groups))
    w = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(7.4, 3.6))
    for k, name in enumerate(names):
        vals = [100 * (m[name][sub][met] or 0) for met, sub in groups]
        bars = ax.bar(x + (k - (len(names) - 1) / 2) * w, vals, w, label=name)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.axhline(50, color="gray", ls=":", lw=1, label="chance")
    for j, (met, _sub) in enumerate(groups):
        for ref, style in (("CLIP", "--"), ("NegCLIP", "-.")):
            ax.hlines(100 * ARO[ref][met], j - 0.45, j + 0.45, colors="black", linestyles=style, lw=0.8,
                      label=f"ARO {ref}" if j == 0 else None)
    ax.set_xticks(x, [f"{met.split('_')[1]}\n({sub.replace('_', '-')})" for met, sub in groups], fontsize=8)
    ax.set(ylabel="true caption preferred (%)", ylim=(0, 105), title=title)
    ax.legend(fontsize=7, ncol=3, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def compare_stage(train_root: Path, eval_root: Path, pretrained: Path, out: Path) -> dict[str, Any]:
    """Stage compare_clip: table.tsv, binding.png, metrics.json (targets, observation)."""
    m = {v: io.read_json(eval_root / v / "metrics.json") for v in VARIANTS}
    t = {v: io.read_json(train_root / v / "metrics.json") for v in VARIANTS}
    pre = io.read_json(pretrained / "metrics.json")
    if pre.get("configured"):
        m[f"pretrained {pre['model']}"] = pre
    rows = []
    for name, e in m.items():
        for sub in ("all", "held_out"):
            row: dict[str, Any] = {"model": name, "subset": sub}
            for k in METRICS:
                row[k] = e[sub][k]
                row[f"{k}_n"] = e[sub][f"{k}_n"]
            rows.append(row)
    io.write_tsv(out / "table.tsv", rows)
    save_figure(plot_binding(m, "binding: true caption vs its colour swap / reversed relation"), out / "binding.png")
    targets = [{"variant": v, "metric": k, "target": thr, "value": m[v]["all"][k], "met": bool((m[v]["all"][k] or 0) >= thr)}
               for (v, k), thr in TARGETS.items()]
    metrics = {
        **{v: {**{k: m[v]["all"][k] for k in METRICS}, "held_out": {k: m[v]["held_out"][k] for k in METRICS},
               "train_seconds": t[v]["seconds"], "steps": t[v]["steps"]} for v in VARIANTS},
        "binding_gain": {k: None if m["plain"]["all"][k] is None else round(m["hardneg"]["all"][k] - m["plain"]["all"][k], 4)
                         for k in ("binding_colour", "binding_relation")},
        "pretrained": pre.get("model") if pre.get("configured") else None,
        "targets": targets,
        "all_targets_met": all(r["met"] for r in targets),
        "observation": observation(m),
    }
    io.write_json(out / "metrics.json", metrics)
    return metrics
