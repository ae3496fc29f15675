"""The grounded-detection tables of the report (results/report/report.md and the README's results block)."""

from __future__ import annotations

from pathlib import Path

from genpipe.grounding.queries import KINDS
from genpipe.pipeline.io import read_json

BACKBONE_LABELS = {"dino": "DINO (train_dino/scenes)", "random": "random ViT (DINO's init)", "supervised": "supervised scene ViT"}
KIND_LABELS = {"digit_colour": "digit+colour", "colour": "colour", "digit": "digit", "position": "position"}


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _map(block: dict) -> str:
    return "–" if block["map_50"] is None else f"{block['map_50']:.3f} / {block['map']:.3f}"


def grounding_tables(results: Path) -> str:
    m = read_json(results / "evaluate_grounding" / "metrics.json")
    b = m["backbones"]
    rows = [f"{m['n_scenes']:,} test scenes, {m['queries']:,} (scene, query) pairs; mAP@0.5 / mAP@[.5:.95] (torchmetrics, "
            f"faster-coco-eval) over the queries naming an object; absent: share of queries naming nothing the scene holds "
            f"answered with a slot above {m['threshold']}:", "",
            "| backbone (frozen) | " + " | ".join(KIND_LABELS[k] for k in KINDS) + " | held-out pairs | absent FP | train wall / CPU |",
            "|---|" + "---|" * (len(KINDS) + 3)]
    for name, s in b.items():
        t = s["train"]
        rows.append(f"| {BACKBONE_LABELS.get(name, name)} | " + " | ".join(_map(s[k]) for k in KINDS)
                    + f" | {_map(s['digit_colour_held_out'])}"
                    + f" | {_pct(s['absent']['false_positive_share'])} | {t['seconds'] / 60:.1f} / {t['cpu_seconds'] / 60:.1f} min |")
    return "\n".join(rows)


def summary_row(results: Path) -> str:
    s = read_json(results / "evaluate_grounding" / "metrics.json")["backbones"]["dino"]
    maps = " / ".join(_map(s[k]).split(" / ")[0] for k in ("digit_colour", "position", "digit_colour_held_out"))
    return ("| grounded detection, colour MNIST scenes (DINO backbone) | mAP@0.5 digit+colour / position / held-out pairs; absent FP | "
            f"{maps}; {_pct(s['absent']['false_positive_share'])} | [grounding](docs/grounding.md) |")
