"""Stage train_clip: open_clip's CLIP on (scene, caption) pairs, optionally with NegCLIP hard negatives.

Each epoch draws one caption per scene among the templates that apply to it
(``captions.random_caption``), so the text side sees every phrasing. Plain CLIP uses open_clip's
``ClipLoss`` (symmetric cross-entropy over the B x B image-text logits). With hard negatives
(Yuksekgonul et al., ARO, ICLR 2023: NegCLIP), each caption of two or three objects also brings
one of its hard negatives (two objects' colours or digits swapped, or the relation reversed,
``captions.hard_negatives``): the image->text logits cover the B captions plus the M negatives,
the text->image side only the B true captions (a negative caption has no image of its own).

AdamW (no decay on gains, biases, embeddings of position and the logit scale, as open_clip's
training does), linear warm-up then cosine decay per step, the logit scale clamped at 100. The model
and its image batches are channels-last (NHWC) while training, for the convolutions.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from tqdm.auto import tqdm

from genpipe.clip import model as clip_model
from genpipe.pipeline import io, trainloop
from genpipe.pipeline.determinism import set_determinism
from genpipe.scenes import captions
from genpipe.scenes.dataset import Scenes, load_scenes

MAX_LOGIT_SCALE = math.log(100.0)
# oneDNN's convolutions run 1.3x faster on NHWC tensors here (benchmarks/clip_throughput.py)
CHANNELS_LAST = torch.channels_last


def negclip_loss(image: torch.Tensor, text: torch.Tensor, negatives: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """NegCLIP's loss on normalised features: image (B, D), text (B, D), negatives (M, D).

    ClipLoss's conventions (labels ``arange(B)``, mean of the two cross-entropies) with the
    image->text logits extended by the M hard-negative columns: (B, B + M). With M = 0 it is
    ``ClipLoss()(image, text, logit_scale)``.
    """
    labels = torch.arange(len(image), device=image.device)
    logits_per_image = logit_scale * image @ torch.cat([text, negatives]).T  # (B, B + M)
    logits_per_text = logit_scale * text @ image.T  # (B, B)
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


def lr_at(step: int, total: int, warmup: int, lr: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """open_clip's split: no weight decay on 1-d tensors (gains, biases), position embeddings, logit scale."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        exclude = p.ndim < 2 or "positional_embedding" in name or "logit_scale" in name or name.endswith("class_embedding")
        (no_decay if exclude else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class TokenCache:
    """open_clip tokens per caption text, computed once (the BPE runs in Python)."""

    def __init__(self, context_length: int) -> None:
        self.context_length = context_length
        self._rows: dict[str, torch.Tensor] = {}

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        new = sorted({t for t in texts if t not in self._rows})
        if new:
            for t, row in zip(new, clip_model.tokenize(new, self.context_length)):
                self._rows[t] = row
        return torch.stack([self._rows[t] for t in texts]) if texts else torch.empty(0, self.context_length, dtype=torch.long)


def epoch_texts(scenes: Scenes, objects: list[list], templates: Mapping[str, Sequence[str]], rng: np.random.Generator,
                hard_negatives: bool) -> tuple[list[str], list[str | None]]:
    """One caption per scene (a template drawn among those that apply) and one of its hard negatives."""
    texts, negs = [], []
    for objs in objects:
        template = captions.random_template(objs, templates, rng)
        texts.append(captions.render(template, objs))
        if hard_negatives:
            options = captions.hard_negatives(objs, template)
            negs.append(options[int(rng.integers(len(options)))] if options else None)
        else:
            negs.append(None)
    return texts, negs


def autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.no_grad()
def val_loss(model: open_clip.CLIP, scenes: Scenes, tokens: torch.Tensor, batch_size: int, precision: str) -> float:
    """ClipLoss on the validation scenes' canonical captions, in batches of ``batch_size``."""
    model.eval()
    loss, total, n = ClipLoss(), 0.0, 0
    for b in range(0, len(scenes), batch_size):
        x = clip_model.preprocess(torch.from_numpy(scenes.images[b : b + batch_size]))
        with autocast(precision):
            fi = model.encode_image(x, normalize=True)
            ft = model.encode_text(tokens[b : b + batch_size], normalize=True)
        total += float(loss(fi.float(), ft.float(), model.logit_scale.exp())) * len(x)
        n += len(x)
    model.train()
    return total / max(1, n)


def train(train_scenes: Scenes, val_scenes: Scenes, p: dict[str, Any], hard_negatives: bool,
          templates: Mapping[str, Sequence[str]], progress: bool = True) -> tuple[open_clip.CLIP, dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Train one CLIP; returns (model, open_clip model config, curves rows, summary)."""
    set_determinism(p["seed"])
    cfg = clip_model.model_cfg(p["model"])
    model = clip_model.build(cfg).to(memory_format=CHANNELS_LAST).train()
    rng = np.random.default_rng(p["seed"])
    if p["n_train"] is not None:
        train_scenes = train_scenes.subset(slice(0, p["n_train"]))
    objects = [train_scenes.objects(i) for i in range(len(train_scenes))]
    tok = TokenCache(cfg["text_cfg"]["context_length"])
    val_scenes = val_scenes.subset(slice(0, p["n_val"]))
    val_tokens = tok([str(c) for c in val_scenes.captions])
    bs = p["batch_size"]
    steps_per_epoch = len(train_scenes) // bs  # full batches only: every step has B negatives
    if steps_per_epoch == 0:
        raise ValueError(f"train_clip.batch_size={bs} exceeds the {len(train_scenes)} training scenes")
    total = steps_per_epoch * p["epochs"]
    warmup = min(p["warmup_steps"], total)
    opt = torch.optim.AdamW(param_groups(model, p["weight_decay"]), lr=p["lr"], betas=(0.9, 0.98), eps=1e-6, fused=True)  # fused: 4 vs 23 ms a step (the 49408-row token table)
    clip_loss = ClipLoss()
    images = torch.from_numpy(train_scenes.images)
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=total, desc="train_clip", unit="step", mininterval=2.0, disable=not progress)
    t0, c0, step, n_neg = time.perf_counter(), time.process_time(), 0, 0
    for epoch in range(p["epochs"]):
        texts, negs = epoch_texts(train_scenes, objects, templates, rng, hard_negatives)
        perm = rng.permutation(len(train_scenes))
        running = trainloop.LossWindow(step)  # the losses stay on the device until the epoch's row
        for i in range(steps_per_epoch):
            idx = perm[i * bs : (i + 1) * bs]
            lr = lr_at(step, total, warmup, p["lr"])
            trainloop.set_lr(opt, lr)
            x = clip_model.preprocess(images[idx]).contiguous(memory_format=CHANNELS_LAST)  # (B, 3, 64, 64)
            t = tok([texts[j] for j in idx])  # (B, L)
            neg_texts = [negs[j] for j in idx if negs[j] is not None]
            n_neg += len(neg_texts)
            with autocast(p["precision"]):
                fi = model.encode_image(x, normalize=True)
                ft = model.encode_text(torch.cat([t, tok(neg_texts)]), normalize=True)
            fi, ft = fi.float(), ft.float()
            scale = model.logit_scale.exp()
            if hard_negatives:
                loss = negclip_loss(fi, ft[:bs], ft[bs:], scale)
            else:
                loss = clip_loss(fi, ft, scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
            running.add(loss)
            step += 1
            bar.update(1)
        bar.set_postfix(loss=f"{running.mean():.3f}", refresh=False)
        vl = val_loss(model, val_scenes, val_tokens, bs, p["precision"])
        rows.append({"step": step, "epoch": epoch + 1, "lr": f"{lr:.6g}", "train_loss": round(float(np.mean(running.values())), 5),
                     "val_loss": round(vl, 5), "logit_scale": round(model.logit_scale.exp().item(), 3)})
        print(f"train_clip epoch {epoch + 1}/{p['epochs']}: train {rows[-1]['train_loss']:.4f} val {vl:.4f} "
              f"scale {rows[-1]['logit_scale']:.1f} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    bar.close()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    summary = {
        "hard_negatives": hard_negatives, "steps": step, "epochs": p["epochs"], "n_train": len(train_scenes),
        "batch_size": bs, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "images_per_second": round(step * bs / seconds, 1),
        "hard_negatives_per_batch": round(n_neg / max(1, step), 1), "final_train_loss": rows[-1]["train_loss"],
        "final_val_loss": rows[-1]["val_loss"], "logit_scale": rows[-1]["logit_scale"],
        "parameters": sum(q.numel() for q in model.parameters()), "threads": torch.get_num_threads(),
        "precision": p["precision"],
    }
    return model.to(memory_format=torch.contiguous_format).eval(), cfg, rows, summary


def train_stage(variant: str, scenes_dir: Path, out: Path, p: dict[str, Any], templates: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Stage train_clip for one variant: model.safetensors + open_clip_config.json, curves.tsv, metrics.json."""
    hard = p["variants"][variant]["hard_negatives"]
    captions.check_templates(templates)
    model, cfg, rows, summary = train(load_scenes(scenes_dir / "train.npz"), load_scenes(scenes_dir / "val.npz"), p, hard, templates)
    clip_model.save(model, cfg, out)
    io.write_tsv(out / "curves.tsv", rows)
    metrics = {"variant": variant, **summary}
    io.write_json(out / "metrics.json", metrics)
    return metrics
