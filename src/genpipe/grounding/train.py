"""Stage train_grounding: the detector head on frozen image tokens and frozen CLIP text states, one run per backbone.

The backbone's patch tokens of the first ``n_train`` train scenes are computed once; every step draws
``batch_size`` scenes and ``queries_per_scene`` queries for each (kinds by ``query_mix``: digit+colour,
colour, digit, position, absent), never a held-out (digit, colour) pair (make_scenes.held_out), so the
test measures composition. Loss: the Hungarian set loss on the decoder's slots plus ``encoder_weight``
x the same loss on every image token's proposal (Grounding DINO's two-stage loss).

Writes <out>/model.safetensors + config.json (the detector), backbone.safetensors + backbone.json (the
frozen backbone it read, so evaluate_grounding scores the same features), curves.tsv and metrics.json (last).
"""

from __future__ import annotations

import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from genpipe.classify.train import param_groups
from genpipe.classify.vit_stage import lr_lambda
from genpipe.grounding.backbones import TextTower, build_backbone, image_tokens
from genpipe.grounding.matching import set_loss, xyxy_to_cxcywh
from genpipe.grounding.model import GroundingConfig, GroundingDetector
from genpipe.grounding.queries import VOCAB_TEXT, held_out_ids, match_matrix, sample_queries
from genpipe.models.vit import count_parameters
from genpipe.pipeline import io
from genpipe.pipeline.determinism import set_determinism
from genpipe.scenes.compose import held_out_pairs
from genpipe.scenes.dataset import IMAGE_SIZE, MAX_OBJECTS, Scenes, load_scenes

MODEL_KEYS = ("dim", "heads", "fusion_layers", "decoder_layers", "slots", "mlp_ratio", "reference_size")
MIX_KEYS = ("digit_colour", "colour", "digit", "position", "absent")


def loss_weights(p: dict[str, Any]) -> dict[str, float]:
    return {"match": p["match_weight"], "l1": p["l1_weight"], "giou": p["giou_weight"]}


def query_targets(scenes: Scenes, scene_idx: np.ndarray, qids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes (P, 3, 4) cxcywh in [0, 1] (zero-padded) of the objects each (scene, query) pair names, and their counts (P,)."""
    boxes = torch.zeros(len(qids), MAX_OBJECTS, 4)
    counts = torch.zeros(len(qids), dtype=torch.long)
    for j, (i, q) in enumerate(zip(scene_idx.tolist(), qids.tolist())):
        hit = np.flatnonzero(match_matrix(scenes.digits[i], scenes.colours[i], scenes.cells[i])[q])
        counts[j] = len(hit)
        boxes[j, : len(hit)] = xyxy_to_cxcywh(torch.from_numpy(scenes.boxes[i, hit].astype(np.float32)) / IMAGE_SIZE)
    return boxes, counts


def detector_loss(model: GroundingDetector, tokens: torch.Tensor, text: torch.Tensor, mask: torch.Tensor, boxes: torch.Tensor,
                  counts: torch.Tensor, p: dict[str, Any]) -> dict[str, torch.Tensor]:
    out = model(tokens, text, mask)
    w = loss_weights(p)
    dec = set_loss(out["logits"], out["boxes"], boxes, counts, w)
    enc = set_loss(out["enc_logits"], out["enc_boxes"], boxes, counts, w)
    return {**dec, "encoder": enc["total"], "total": dec["total"] + p["encoder_weight"] * enc["total"]}


def fit(model: GroundingDetector, tokens: torch.Tensor, scenes: Scenes, text: tuple[torch.Tensor, torch.Tensor],
        p: dict[str, Any], allowed: np.ndarray, name: str) -> list[dict[str, float]]:
    """AdamW, warm-up + cosine per step; scenes and queries drawn from generators seeded by the seed and epoch."""
    n, q = len(scenes), p["queries_per_scene"]
    steps_per_epoch = math.ceil(n / p["batch_size"])
    total = p["epochs"] * steps_per_epoch
    opt = torch.optim.AdamW(param_groups(model, p["weight_decay"]), lr=p["lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(min(p["warmup_steps"], total), total))
    mix = np.array([p["query_mix"][k] for k in MIX_KEYS], float)
    mix /= mix.sum()
    states, valid = text
    rows: list[dict[str, float]] = []
    bar = tqdm(total=total, desc=name, unit="step", mininterval=5.0)
    step, acc = 0, {}
    model.train()
    for epoch in range(1, p["epochs"] + 1):
        rng = np.random.default_rng([p["seed"], epoch])
        perm = rng.permutation(n)
        for start in range(0, n, p["batch_size"]):
            idx = perm[start : start + p["batch_size"]]
            qids = np.array([sample_queries(scenes.digits[i], scenes.colours[i], scenes.cells[i], q, mix, rng, allowed)
                             for i in idx]).reshape(-1)
            scene_idx = np.repeat(idx, q)
            boxes, counts = query_targets(scenes, scene_idx, qids)
            qt = torch.from_numpy(qids)
            loss = detector_loss(model, tokens[torch.from_numpy(scene_idx)], states[qt], valid[qt], boxes, counts, p)
            if not torch.isfinite(loss["total"]):
                raise FloatingPointError(f"{name}: loss is {loss['total'].item()} at step {step}; lower grounding.lr")
            opt.zero_grad(set_to_none=True)
            loss["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), p["grad_clip"])
            opt.step()
            sched.step()
            step += 1
            bar.update()
            for k, v in loss.items():
                acc[k] = acc.get(k, 0.0) + float(v.detach())
            if step % p["log_every"] == 0 or step == total:
                k_steps = (step - 1) % p["log_every"] + 1
                rows.append({"step": step, "epoch": epoch, **{k: round(v / k_steps, 6) for k, v in acc.items()},
                             "lr": round(sched.get_last_lr()[0], 8)})
                acc = {}
                bar.set_postfix(loss=f"{rows[-1]['total']:.3f}", giou=f"{rows[-1]['giou']:.3f}", refresh=False)
    bar.close()
    return rows


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run(backbone: str, scenes_path: Path, dino_dir: Path, clip_dir: Path, out: Path, p: dict[str, Any], dino_seed: int,
        held_out: list[Any]) -> dict[str, Any]:
    """Train one ablation row's detector with the ``grounding`` params section."""
    set_determinism(p["seed"])
    t0, c0 = time.perf_counter(), time.process_time()
    scenes = load_scenes(scenes_path)
    scenes = scenes.subset(slice(0, p["n_train"])) if p["n_train"] else scenes
    sup = scenes.subset(slice(0, p["supervised"]["n_train"])) if p["supervised"]["n_train"] else scenes
    vit, vit_config, sup_rows = build_backbone(backbone, dino_dir, dino_seed, sup, p["supervised"])
    t_backbone = time.perf_counter() - t0
    tokens = image_tokens(vit, scenes.images, desc=f"train_grounding {backbone}: image tokens")  # (N, grid², D)
    tower = TextTower(clip_dir)
    text = tower(list(VOCAB_TEXT))
    cfg = GroundingConfig(image_dim=tokens.shape[-1], text_dim=tower.width, grid=vit.config.grid, **{k: p["model"][k] for k in MODEL_KEYS})
    torch.manual_seed(p["seed"])
    model = GroundingDetector(cfg)
    allowed = ~held_out_ids(held_out_pairs(held_out))
    print(f"train_grounding {backbone}: {len(scenes):,} scenes x {p['queries_per_scene']} queries, {p['epochs']} epochs, "
          f"detector {count_parameters(model):,} parameters, torch threads={torch.get_num_threads()}", file=sys.stderr)
    t1, c1 = time.perf_counter(), time.process_time()
    rows = fit(model, tokens, scenes, text, p, allowed, f"train_grounding {backbone}")
    seconds, cpu = time.perf_counter() - t1, time.process_time() - c1

    config = {**cfg.to_dict(), "backbone": vit_config, "text": {"clip": str(clip_dir), "context_length": tower.context_length}}
    io.save_model(model, config, out / "model.safetensors", out / "config.json")
    io.save_model(vit, vit_config, out / "backbone.safetensors", out / "backbone.json")
    io.write_tsv(out / "curves.tsv", rows)
    pairs = len(scenes) * p["queries_per_scene"] * p["epochs"]
    metrics = {"backbone": backbone, "scenes": len(scenes), "pairs_seen": pairs, "steps": rows[-1]["step"],
               "parameters": count_parameters(model), "final_loss": rows[-1]["total"], "final_giou": rows[-1]["giou"],
               "train_seconds": round(seconds, 1), "train_cpu_seconds": round(cpu, 1), "pairs_per_second": round(pairs / seconds, 1),
               "backbone_seconds": round(t_backbone, 1), "seconds": round(time.perf_counter() - t0, 1),
               "cpu_seconds": round(time.process_time() - c0, 1), "peak_rss_mb": peak_rss_mb(), "threads": torch.get_num_threads()}
    if sup_rows:
        metrics["supervised"] = {"scenes": len(sup), **sup_rows[-1]}
    io.write_json(out / "metrics.json", metrics)  # last: its presence means the run finished
    return metrics
