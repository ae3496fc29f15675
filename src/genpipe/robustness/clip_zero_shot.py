"""CLIP's zero-shot digit classifier as an attackable module, its visual prompt, and the defenses' training.

The classifier (Radford et al. 2021): a scene's image embedding against the text embeddings of the
10 digit classes (prompt-ensembled over the one-object captions of each digit in every colour,
``genpipe.clip.evaluate.zero_shot_classes``), logits = CLIP's logit scale x cosine similarity.
:class:`ZeroShot` takes [0, 1] pixels, like every attacked model in this package, so one ε means
the same perturbation for all; the text embeddings are computed once from the frozen text tower.

The defenses all minimise the same adversarial loss, TeCoA's (Mao et al., ICLR 2023: text-guided
contrastive adversarial training): cross-entropy of the zero-shot logits on PGD images made
against that same loss, the text embeddings frozen. They differ in what trains:

* ``tecoa``: the whole image tower;
* ``prompt``: only an additive visual prompt on the image's border (Bahng et al. 2022, padding
  prompter; Chen et al. 2023 for its robust variant), the towers frozen;
* ``lora``: only rank-r matrices on the image tower's attention projections (:mod:`.lora`).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from genpipe.clip import model as clip_model
from genpipe.clip.evaluate import Scorer, zero_shot_classes
from genpipe.clip.train import autocast, lr_at
from genpipe.pipeline import trainloop
from genpipe.robustness import lora
from genpipe.robustness.adversarial import pgd
from genpipe.scenes.dataset import Scenes

DEFENSES = ("tecoa", "prompt", "lora")


class PadPrompt(nn.Module):
    """A learnt additive prompt on a ``width``-pixel border of the [0, 1] image; zeros are the identity."""

    def __init__(self, size: int, width: int, channels: int = 3) -> None:
        super().__init__()
        if not 0 < 2 * width < size:
            raise ValueError(f"defend_clip.prompt.width: {width} px leaves no image inside a {size} px border (need 0 < 2 x width < {size})")
        mask = torch.ones(1, 1, size, size)
        mask[..., width:-width, width:-width] = 0
        self.register_buffer("mask", mask)
        self.delta = nn.Parameter(torch.zeros(1, channels, size, size))
        self.width = width

    def pattern(self) -> torch.Tensor:
        """The additive pattern (1, C, size, size): the learnt pixels on the border, zeros inside."""
        return self.delta * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pattern()

    def n_trainable(self) -> int:
        """The prompt's free pixels (the border), what it can learn; the tensor is full-size for simplicity."""
        return int(self.mask.sum().item()) * self.delta.shape[1]


class ZeroShot(nn.Module):
    """[0, 1] pixels (B, 3, H, W) -> zero-shot logits (B, K) of a CLIP image tower against ``classes`` (K, D).

    ``prompt``: applied to the pixels before CLIP's normalisation (the prompt defense).
    ``channels_last``: the image tower's layout (train_clip trains NHWC; 1.45x on oneDNN's convolutions).
    """

    def __init__(self, visual: nn.Module, classes: torch.Tensor, logit_scale: float, prompt: nn.Module | None = None,
                 channels_last: bool = True) -> None:
        super().__init__()
        self.visual, self.prompt = visual, prompt
        self.register_buffer("classes", classes.detach().float())
        self.register_buffer("mean", torch.tensor(clip_model.PREPROCESS["mean"]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(clip_model.PREPROCESS["std"]).view(1, 3, 1, 1))
        self.logit_scale = float(logit_scale)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.prompt is not None:
            x = self.prompt(x)
        z = self.visual(((x - self.mean) / self.std).contiguous(memory_format=self.memory_format))
        return self.logit_scale * F.normalize(z.float(), dim=-1) @ self.classes.T


class PromptedCLIP(nn.Module):
    """A CLIP whose ``encode_image`` first adds a pixel-space prompt: what :class:`Scorer` needs to benchmark the prompt defense.

    The scorer's images are already normalised ((x - mean) / std), so the prompt enters divided by std.
    """

    def __init__(self, clip: nn.Module, prompt: PadPrompt) -> None:
        super().__init__()
        self.clip, self.prompt = clip, prompt
        self.register_buffer("std", torch.tensor(clip_model.PREPROCESS["std"]).view(1, 3, 1, 1))

    def encode_image(self, x: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self.clip.encode_image(x + self.prompt.pattern() / self.std, normalize=normalize)

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self.clip.encode_text(tokens, normalize=normalize)


def digit_classes(clip: nn.Module, context_length: int, templates: dict[str, Sequence[str]]) -> torch.Tensor:
    """The 10 digits' prompt-ensembled, normalised text embeddings (10, D), as evaluate_clip's zero-shot uses them."""
    digits, _ = zero_shot_classes(Scorer(clip, context_length=context_length), templates["one"])
    return digits


def single_objects(scenes: Scenes, held_out: set[tuple[int, int]] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the one-object scenes, their digit labels, and whether the object is a held-out (digit, colour) pair."""
    idx = np.nonzero(scenes.n_objects == 1)[0]
    digits, colours = scenes.digits[idx, 0].astype(np.int64), scenes.colours[idx, 0]
    ho = np.array([(int(d), int(c)) in held_out for d, c in zip(digits, colours)], bool) if held_out else np.zeros(len(idx), bool)
    return idx, digits, ho


def pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1] (clip.model.preprocess before its normalisation)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


def trainable(defense: str, clip: nn.Module, p: dict[str, Any]) -> tuple[list[nn.Parameter], PadPrompt | None]:
    """Freeze what the defense keeps fixed; returns the tensors it trains (and the prompt for ``prompt``)."""
    for q in clip.parameters():
        q.requires_grad_(False)
    if defense == "tecoa":
        params = list(clip.visual.parameters())
        for q in params:
            q.requires_grad_(True)
        return params, None
    if defense == "prompt":
        prompt = PadPrompt(clip_model.IMAGE_SIZE, p["prompt"]["width"])
        return [prompt.delta], prompt
    if defense == "lora":
        return lora.apply(clip.visual, p["lora"]["rank"], p["lora"]["alpha"]), None
    raise ValueError(f"defend_clip: unknown defense {defense!r} (known: {', '.join(DEFENSES)})")


def n_trainable(defense: str, params: list[nn.Parameter], prompt: PadPrompt | None) -> int:
    return prompt.n_trainable() if prompt is not None else sum(q.numel() for q in params)


def adversarial_finetune(defense: str, clip: nn.Module, classes: torch.Tensor, images: np.ndarray, labels: np.ndarray,
                         p: dict[str, Any], progress: bool = True) -> tuple[ZeroShot, PadPrompt | None, list[dict[str, Any]], dict[str, Any]]:
    """Train one defense with TeCoA's loss on PGD images; returns the zero-shot model, its prompt, curves rows and a summary.

    The image tower stays in eval mode (BatchNorm statistics frozen, as for the attacks); PGD is
    remade against the current model at every step, from a random start.
    """
    g = torch.Generator().manual_seed(p["seed"])
    rng = np.random.default_rng(p["seed"])
    params, prompt = trainable(defense, clip, p)
    zs = ZeroShot(clip.visual, classes, clip.logit_scale.exp().item(), prompt).eval()
    dp = p[defense]
    opt = torch.optim.AdamW(params, lr=dp["lr"], weight_decay=dp.get("weight_decay", 0.0))
    bs, eps, q = p["batch_size"], p["eps"], p["pgd"]
    alpha = q["alpha_ratio"] * eps / q["steps"]
    per_epoch = len(images) // bs
    if per_epoch == 0:
        raise ValueError(f"defend_clip.batch_size={bs} exceeds the {len(images)} one-object training scenes")
    total = per_epoch * p["epochs"]
    warmup = min(p["warmup_steps"], total)
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=total, desc=f"defend_clip {defense}", unit="step", mininterval=2.0, disable=not progress)
    t0, c0, step = time.perf_counter(), time.process_time(), 0
    y_all = torch.from_numpy(labels)
    for _ in range(p["epochs"]):
        perm = rng.permutation(len(images))
        window, hits, seen = trainloop.LossWindow(step), torch.zeros((), dtype=torch.long), 0
        for i in range(per_epoch):
            idx = perm[i * bs : (i + 1) * bs]
            x, y = pixels(images[idx]), y_all[idx]
            trainloop.set_lr(opt, lr_at(step, total, warmup, dp["lr"]))
            with autocast(p["precision"]):
                x_adv = pgd(zs, x, y, eps, q["steps"], alpha, random_start=True, generator=g)
                logits = zs(x_adv)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            window.add(loss)
            hits += (logits.argmax(1) == y).sum()
            seen += bs
            step += 1
            bar.update(1)
            if step % p["log_every"] == 0 or i == per_epoch - 1:  # the means over the steps since the last row
                rows.append({"step": step, "adv_loss": round(window.mean(), 5),
                             "adv_train_accuracy": round(hits.item() / seen, 5)})
                bar.set_postfix(loss=f"{rows[-1]['adv_loss']:.3f}", acc=f"{rows[-1]['adv_train_accuracy']:.3f}", refresh=False)
                window, hits, seen = trainloop.LossWindow(step), torch.zeros((), dtype=torch.long), 0
    bar.close()
    if not math.isfinite(rows[-1]["adv_loss"]):
        raise FloatingPointError(f"defend_clip {defense}: the adversarial loss is {rows[-1]['adv_loss']} at step {step}")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    summary = {"trainable_parameters": n_trainable(defense, params, prompt), "steps": step, "images": step * bs,
               "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "final_adv_loss": rows[-1]["adv_loss"],
               "final_adv_train_accuracy": rows[-1]["adv_train_accuracy"]}
    print(f"defend_clip {defense}: {summary['trainable_parameters']:,} trainable, {step} steps, adversarial train accuracy "
          f"{100 * summary['final_adv_train_accuracy']:.1f} % ({seconds:.0f} s)", file=sys.stderr)
    for q_ in clip.parameters():
        q_.requires_grad_(False)
    return zs, prompt, rows, summary
