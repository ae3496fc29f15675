"""Stage evaluate_grounding: each backbone's detector on the test scenes, per query kind, and detections.png.

Each of the first ``n_test`` test scenes is asked every query that names one of its objects (all four
kinds) and one absent query per kind (preferring one that shares a digit or a colour with an object).
Per kind, over the queries naming something: box mAP@0.5 and mAP@[.5:.95] (torchmetrics
``MeanAveragePrecision``, faster-coco-eval backend; each (scene, query) pair one image, one class) and
the share whose best-scoring slot overlaps a named object at IoU >= 0.5. Digit+colour queries are also
split into seen pairs and the held-out pairs (never in a train scene). Absent queries: the share answered
with any slot scoring above ``threshold`` (a false positive).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle
from torchvision.ops import box_iou

from genpipe.grounding.backbones import TextTower, image_tokens
from genpipe.grounding.model import GroundingConfig, GroundingDetector, cxcywh_to_xyxy
from genpipe.grounding.queries import KINDS, VOCAB_KIND, VOCAB_TEXT, eval_queries, held_out_ids, match_matrix, query_id
from genpipe.grounding.train import peak_rss_mb, query_targets
from genpipe.models.vit import ViT, ViTConfig
from genpipe.pipeline import io
from genpipe.pipeline.determinism import set_determinism
from genpipe.pipeline.plots import save_figure
from genpipe.scenes.compose import held_out_pairs
from genpipe.scenes.dataset import IMAGE_SIZE, Scenes, load_scenes


def load_run(run_dir: Path) -> tuple[GroundingDetector, ViT, dict[str, Any]]:
    """A train_grounding run's detector and the frozen backbone it was trained on (eval mode); a backbone
    of another shape than the detector's config records stops naming the keys (io.ConfigMismatchError)."""
    state, config = io.load_state(run_dir / "model.safetensors", run_dir / "config.json")
    detector = GroundingDetector(GroundingConfig(**{k: v for k, v in config.items() if k in GroundingConfig.__dataclass_fields__}))
    detector.load_state_dict(state)
    vit_state, vit_config = io.load_state(run_dir / "backbone.safetensors", run_dir / "backbone.json", config["backbone"])
    vit = ViT(ViTConfig(**{k: v for k, v in vit_config.items() if k in ViTConfig.__dataclass_fields__}, num_classes=0))
    vit.load_state_dict(vit_state)
    return detector.eval(), vit.eval(), config


@torch.inference_mode()
def predict(detector: GroundingDetector, tokens: torch.Tensor, text: tuple[torch.Tensor, torch.Tensor], scene_idx: np.ndarray,
            qids: np.ndarray, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Slot boxes (P, Q, 4) xyxy in pixels and scores (P, Q) of every (scene, query) pair."""
    states, valid = text
    boxes, scores = [], []
    for start in range(0, len(qids), batch_size):
        s, q = torch.from_numpy(scene_idx[start : start + batch_size]), torch.from_numpy(qids[start : start + batch_size])
        out = detector(tokens[s], states[q], valid[q])
        boxes.append(cxcywh_to_xyxy(out["boxes"]) * IMAGE_SIZE)
        scores.append(out["logits"].sigmoid())
    return torch.cat(boxes), torch.cat(scores)


def box_map(boxes: torch.Tensor, scores: torch.Tensor, truth: torch.Tensor, counts: torch.Tensor) -> dict[str, float]:
    """mAP@0.5 and mAP@[.5:.95] of the pairs given, one image per pair, one class."""
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_type="bbox", box_format="xyxy", backend="faster_coco_eval", max_detection_thresholds=[1, 10, 100])
    zeros = torch.zeros(boxes.shape[1], dtype=torch.long)
    preds = [{"boxes": b, "scores": s, "labels": zeros} for b, s in zip(boxes, scores)]
    target = [{"boxes": t[: int(n)], "labels": torch.zeros(int(n), dtype=torch.long)} for t, n in zip(truth, counts)]
    metric.update(preds, target)
    r = metric.compute()
    return {"map_50": round(float(r["map_50"]), 6), "map": round(float(r["map"]), 6)}


def top1_hit(boxes: torch.Tensor, scores: torch.Tensor, truth: torch.Tensor, counts: torch.Tensor) -> float:
    """Share of pairs whose best-scoring slot overlaps one of the named objects at IoU >= 0.5."""
    best = boxes[torch.arange(len(boxes)), scores.argmax(1)]  # (P, 4)
    hits = [bool((box_iou(best[i : i + 1], truth[i, : int(counts[i])]) >= 0.5).any()) for i in range(len(best))]
    return round(float(np.mean(hits)), 6) if hits else float("nan")


def score_block(sel: np.ndarray, boxes: torch.Tensor, scores: torch.Tensor, truth: torch.Tensor, counts: torch.Tensor) -> dict[str, Any]:
    s = torch.from_numpy(np.flatnonzero(sel))
    if len(s) == 0:  # e.g. no held-out pair among a few test scenes
        return {"queries": 0, "map_50": None, "map": None, "top1_iou50": None}
    return {"queries": int(len(s)), **box_map(boxes[s], scores[s], truth[s], counts[s]),
            "top1_iou50": top1_hit(boxes[s], scores[s], truth[s], counts[s])}


def score(boxes: torch.Tensor, scores: torch.Tensor, truth: torch.Tensor, counts: torch.Tensor, qids: np.ndarray,
          held: np.ndarray, threshold: float) -> dict[str, Any]:
    kind, present = VOCAB_KIND[qids], counts.numpy() > 0
    m: dict[str, Any] = {k: score_block(present & (kind == i), boxes, scores, truth, counts) for i, k in enumerate(KINDS)}
    dc = present & (kind == KINDS.index("digit_colour"))
    m["digit_colour_seen"] = score_block(dc & ~held[qids], boxes, scores, truth, counts)
    m["digit_colour_held_out"] = score_block(dc & held[qids], boxes, scores, truth, counts)
    fp = (scores.amax(1) > threshold).numpy()
    m["absent"] = {"queries": int((~present).sum()), "false_positive_share": round(float(fp[~present].mean()), 6),
                   **{f"false_positive_share_{k}": round(float(fp[~present & (kind == i)].mean()), 6) for i, k in enumerate(KINDS)}}
    m["present_answered_share"] = round(float(fp[present].mean()), 6)  # named objects answered above threshold
    return m


def plot_detections(scenes: Scenes, picks: list[tuple[int, int]], results: dict[str, tuple[torch.Tensor, torch.Tensor]],
                    threshold: float) -> plt.Figure:
    """Rows: backbones; columns: (scene, query) pairs; boxes above ``threshold`` with their scores."""
    names = list(results)
    fig, axes = plt.subplots(len(names), len(picks), figsize=(1.9 * len(picks), 2.1 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        boxes, scores = results[name]
        for c, (i, q) in enumerate(picks):
            ax = axes[r, c]
            ax.imshow(scenes.images[i])
            for b, s in zip(boxes[c].tolist(), scores[c].tolist()):
                if s > threshold:
                    ax.add_patch(Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, color="orange", lw=1.2))
                    ax.text(b[0], b[1] - 1, f"{s:.2f}", color="orange", fontsize=6)
            if r == 0:
                ax.set_title(f'"{VOCAB_TEXT[q]}"', fontsize=7)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"grounded detection: slots scoring above {threshold} (orange), per backbone", fontsize=9)
    fig.tight_layout()
    return fig


def figure_picks(scenes: Scenes, texts: list[str], absent: int = 2) -> list[tuple[int, int]]:
    """(scene, query) pairs for the figure: each text on the first unused test scene holding what it names,
    then the first ``absent`` texts on a scene that does not (the answer: nothing). Each text is parsed, so a
    bad one stops naming its word."""
    qids = [query_id(t) for t in texts]
    m = np.stack([match_matrix(scenes.digits[i], scenes.colours[i], scenes.cells[i]).any(1) for i in range(len(scenes))])  # (S, V)
    picks: list[tuple[int, int]] = []
    for k, q in enumerate(qids + qids[:absent]):
        want = k < len(qids)
        free = [i for i in np.flatnonzero(m[:, q] == want).tolist() if i not in {s for s, _ in picks}]
        picks.append((free[0] if free else 0, q))
    return picks


def run(scenes_path: Path, runs: dict[str, Path], clip_dir: Path, out: Path, p: dict[str, Any], held_out: list[Any]) -> dict[str, Any]:
    set_determinism(p["seed"])
    t0, c0 = time.perf_counter(), time.process_time()
    scenes = load_scenes(scenes_path)
    scenes = scenes.subset(slice(0, p["n_test"])) if p["n_test"] else scenes
    rng = np.random.default_rng(p["seed"])
    per_scene = [eval_queries(scenes.digits[i], scenes.colours[i], scenes.cells[i], rng) for i in range(len(scenes))]
    scene_idx = np.repeat(np.arange(len(scenes)), [len(q) for q in per_scene])
    qids = np.array([q for qs in per_scene for q in qs])
    truth, counts = query_targets(scenes, scene_idx, qids)
    truth = cxcywh_to_xyxy(truth * IMAGE_SIZE)  # (P, 3, 4) xyxy pixels
    held = held_out_ids(held_out_pairs(held_out))
    tower = TextTower(clip_dir)
    text = tower(list(VOCAB_TEXT))
    picks = figure_picks(scenes, p["figure_queries"])
    pick_s, pick_q = np.array([s for s, _ in picks]), np.array([q for _, q in picks])
    metrics: dict[str, Any] = {"n_scenes": len(scenes), "queries": int(len(qids)), "threshold": p["threshold"],
                               "held_out_pairs": [[d, c] for d, c in held_out], "backbones": {}}
    shown = {}
    for name, run_dir in runs.items():
        detector, vit, config = load_run(run_dir)
        tokens = image_tokens(vit, scenes.images, desc=f"evaluate_grounding {name}: image tokens")
        boxes, scores = predict(detector, tokens, text, scene_idx, qids, p["batch_size"])
        m = score(boxes, scores, truth, counts, qids, held, p["threshold"])
        m["train"] = io.read_json(run_dir / "metrics.json")
        metrics["backbones"][name] = m
        shown[name] = predict(detector, tokens, text, pick_s, pick_q, p["batch_size"])
        print(f"evaluate_grounding {name}: mAP@0.5 " + ", ".join(f"{k} {m[k]['map_50']:.3f}" for k in KINDS)
              + f"; held-out pairs {m['digit_colour_held_out']['map_50']}; absent FP {m['absent']['false_positive_share']:.3f}",
              file=sys.stderr)
    save_figure(plot_detections(scenes, picks, shown, p["threshold"]), out / "detections.png")
    metrics.update(seconds=round(time.perf_counter() - t0, 1), cpu_seconds=round(time.process_time() - c0, 1), peak_rss_mb=peak_rss_mb())
    io.write_json(out / "metrics.json", metrics)
    return metrics

