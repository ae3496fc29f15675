"""The second feature space generated images are scored in, and the second judge (issue 19).

The first space is the dataset classifier's penultimate layer (:mod:`genpipe.scoring.evaluation`):
trained to ignore what does not change the class, it sees fidelity but little of the within-class
variety of strokes and shapes. The second is the class token of the DINO ViT trained on the same
dataset's training images *without labels* (``train_dino/<dataset>``): self-supervised features, as
Stein et al. (NeurIPS 2023) recommend for the Fréchet distance.

The second judge of generation accuracy is another network trained independently of the
classifier, one per dataset (:data:`JUDGES`): for MNIST the scene parser of ``train_scene_parser``
(a detector trained on colour scenes of MNIST digits; each digit is shown to it as a white digit in
the top-left cell of an empty scene), for Fashion-MNIST the supervised ViT of ``train_vit``. A
linear probe on the DINO features was the first candidate; on this CPU's DINO it recognised 70 % of
the real MNIST test digits, too weak to judge anyone (docs/ddpm.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from genpipe.classify.vit_stage import load_model as load_vit
from genpipe.dino.stages import load_backbone
from genpipe.pipeline import io
from genpipe.scenes.dataset import CELL
from genpipe.scenes.detect import parse
from genpipe.scenes.parser_stages import load_parser

# dataset -> (the stage whose model is the second judge, what it is)
JUDGES = {"mnist": ("train_scene_parser", "scene parser (train_scene_parser)"), "fashion_mnist": ("train_vit", "supervised ViT (train_vit)")}
NO_ANSWER = -1  # the parser found no digit

class DinoFeatures:
    """uint8 images (N, 28, 28) -> the DINO teacher's class token (N, d), float64."""

    def __init__(self, dino_dir: Path) -> None:
        self.model, self.config = load_backbone(dino_dir)
        self.sha256 = io.sha256_file(dino_dir / "model.safetensors")
        self.dim = int(self.config["dim"])
        self.run = str(self.config["run"])

    @torch.inference_mode()
    def __call__(self, images: np.ndarray | torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        x = torch.as_tensor(images)
        if x.ndim != 3:
            raise ValueError(f"DINO features take grey images (N, H, W); got shape {tuple(x.shape)}")
        out = [self.model.forward_features(x[i : i + batch_size].float().div(255).unsqueeze(1)).cls_token
               for i in range(0, len(x), batch_size)]  # train_dino's input: [0, 1], no normalisation
        return torch.cat(out).double()


class ParserJudge:
    """uint8 digits (N, 28, 28) -> the scene parser's digit (N,), -1 where it finds none: each digit is painted
    white (its intensity on all three channels, as make_scenes paints a white object) at (2, 2) of an empty
    64 x 64 scene, in the top-left cell at 28 px (inside make_scenes' size range), and the most confident
    detection answers."""

    def __init__(self, judge_dir: Path) -> None:
        self.model = load_parser(judge_dir)
        self.sha256 = io.sha256_file(judge_dir / "model.safetensors")

    def scenes(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, dtype=np.uint8)
        side = 2 * CELL
        out = np.zeros((len(x), side, side, 3), np.uint8)
        off = (CELL - x.shape[-1]) // 2
        out[:, off : off + x.shape[1], off : off + x.shape[2], :] = x[..., None]
        return out

    def __call__(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        dets = parse(self.model, self.scenes(np.asarray(images)))
        return torch.tensor([max(d, key=lambda o: o.score).digit if d else NO_ANSWER for d in dets], dtype=torch.long)


class ViTJudge:
    """uint8 images (N, 28, 28) -> train_vit's predicted class (N,)."""

    def __init__(self, judge_dir: Path) -> None:
        self.model, self.config = load_vit(judge_dir)
        self.sha256 = io.sha256_file(judge_dir / "model.safetensors")

    @torch.inference_mode()
    def __call__(self, images: np.ndarray | torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        x = torch.as_tensor(images)
        mean, std = self.config["input_mean"], self.config["input_std"]
        return torch.cat([self.model((x[i : i + batch_size].float().div(255).unsqueeze(1) - mean) / std).argmax(1)
                          for i in range(0, len(x), batch_size)])


def load_judge(dataset: str, judge_dir: Path) -> ParserJudge | ViTJudge:
    """The second judge of ``dataset`` (:data:`JUDGES`) from its stage's run directory."""
    if dataset not in JUDGES:
        raise ValueError(f"no second judge for dataset {dataset!r} (known: {', '.join(JUDGES)})")
    judge = ParserJudge(judge_dir) if JUDGES[dataset][0] == "train_scene_parser" else ViTJudge(judge_dir)
    if isinstance(judge, ViTJudge) and judge.config.get("dataset") != dataset:
        raise ValueError(f"{judge_dir}: the second judge of {dataset} must be trained on it, this one on {judge.config.get('dataset')}")
    return judge
