"""Stage train_dino: DINO (genpipe.dino.train) on unlabelled images, one run per image set.

Runs (params.yaml ``dino.runs``): ``fashion_mnist`` and ``mnist`` — the training split of
train_classifier (its 5,000 validation images left out; only the images file is read, never the labels; ``mnist`` is
the feature space evaluate_samples scores the DDPM's digits in) — and ``scenes`` — the train scenes of make_scenes
(64 x 64 RGB). Writes <out>/model.safetensors + config.json (the *teacher's*
backbone, what DINO evaluates; ``genpipe.dino.stages.load_backbone`` reads it), curves.tsv (loss,
teacher entropy, KL to uniform, temperature, momentum, lr every ``log_every`` steps) and metrics.json
(written last: images, epochs, steps, wall and CPU time, the last row, whether the teacher collapsed).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genpipe.classify import vit_stage
from genpipe.data import datasets as data
from genpipe.dino.train import DinoTrainer, run_params
from genpipe.models.vit import ViT, count_parameters
from genpipe.pipeline import io
from genpipe.pipeline.determinism import set_determinism
from genpipe.scenes.dataset import load_scenes

RUNS = ("fashion_mnist", "mnist", "scenes")
IDX_RUNS = ("fashion_mnist", "mnist")  # grey 28 x 28 datasets: their IDX training images file
# collapse (the paper's Fig. 7): to one prototype, the mean output is one-hot (KL to uniform -> log K);
# to the uniform answer, every output is uniform (entropy -> log K); a healthy teacher is sharp (low
# entropy) yet spread over the prototypes (low KL)
COLLAPSE_SHARE = 0.95


def training_images(images_file: Path, seed: int, val_size: int = 5000) -> torch.Tensor:
    """The images of train_classifier's training split for ``seed`` (N, 1, 28, 28) in [0, 1], read from the
    verified IDX images file alone: DINO never opens the labels; the test images stay unseen for evaluate_dino."""
    x = torch.from_numpy(data.read_idx(images_file).copy())
    tr_idx, _ = data.train_val_split(len(x), val_size, seed)
    return x[tr_idx].float().div(255).unsqueeze(1)


def scene_tensor(images: np.ndarray) -> torch.Tensor:
    """Scene images (N, 64, 64, 3) uint8 as (N, 3, 64, 64) float in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)


def scene_images(path: Path) -> torch.Tensor:
    return scene_tensor(load_scenes(path).images)


def load_images(run: str, source: Path, seed: int) -> torch.Tensor:
    if run in IDX_RUNS:
        return training_images(source, seed)
    if run == "scenes":
        return scene_images(source)
    raise ValueError(f"train_dino: unknown run {run!r} (known: {', '.join(RUNS)})")


def load_backbone(run_dir: Path, expected: dict[str, Any] | None = None) -> tuple[ViT, dict[str, Any]]:
    """A trained teacher backbone (eval mode) and its config: saved like train_vit's ViT, so read by its
    loader; a checkpoint of another shape than ``expected`` stops with the keys that differ."""
    return vit_stage.load_model(run_dir, expected)


def train(run: str, source: Path, out: Path, dino: dict[str, Any], checkpoint: Path) -> dict[str, Any]:
    """Train one DINO run with the ``dino`` params section; resumable from ``checkpoint``, which is
    deleted once the outputs are written."""
    p = run_params(dino, run)
    set_determinism(p["seed"])
    x = load_images(run, source, p["seed"])
    if p["limit"]:
        x = x[: p["limit"]]
    _, channels, size, _ = x.shape
    trainer = DinoTrainer(p, checkpoint, image_size=size, in_channels=channels)
    student = trainer.nets.student
    n_params = {"backbone": count_parameters(student["backbone"]), "head": count_parameters(student["head"])}
    print(f"train_dino {run}: {len(x):,} images {channels}x{size}x{size}, ViT dim {p['vit']['dim']} depth {p['vit']['depth']} "
          f"patch {p['vit']['patch_size']} ({n_params['backbone']:,} + head {n_params['head']:,} parameters), "
          f"{p['local_crops']} local crops of {p['local_size']} px, {p['epochs']} epochs, "
          f"torch threads={torch.get_num_threads()}", file=sys.stderr)
    t0, c0 = time.perf_counter(), time.process_time()
    rows = trainer.fit(x, name=f"train_dino {run}")
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0

    teacher = trainer.teacher_backbone().cpu()
    config = {**teacher.config.to_dict(), "run": run, "epochs": p["epochs"], "images": len(x)}
    io.save_model(teacher, config, out / "model.safetensors", out / "config.json")
    io.write_tsv(out / "curves.tsv", rows)
    last = rows[-1]
    log_k = math.log(p["head"]["out_dim"])
    collapsed = max(last["teacher_entropy"], last["kl_uniform"]) > COLLAPSE_SHARE * log_k
    metrics = {"run": run, "images": len(x), "epochs": p["epochs"], "steps": trainer.step, "parameters": n_params,
               "local_crops": p["local_crops"], "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
               "images_per_second": round(len(x) * p["epochs"] / seconds, 1), "final_loss": last["loss"],
               "teacher_entropy": last["teacher_entropy"], "kl_uniform": last["kl_uniform"], "log_prototypes": round(log_k, 5),
               "collapsed": collapsed}
    io.write_json(out / "metrics.json", metrics)  # last: its presence means the run finished
    checkpoint.unlink(missing_ok=True)
    return metrics
