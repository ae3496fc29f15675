"""A classifier on the VAE's latent mean: frozen encoder (a probe of the representation) or
fine-tuned end to end (stage train_latent_probe, variants ``frozen`` and ``finetune``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from genpipe.pipeline import io
from genpipe.vae.autoencoder import load as load_autoencoder
from genpipe.models.vae import Encoder
from genpipe.classify.train import predict, scores
from genpipe.pipeline.determinism import set_determinism

VARIANTS = ("frozen", "finetune")


class LatentClassifier(nn.Module):
    """[0, 1] images (B, 1, 28, 28) -> the VAE encoder's mu (B, latent_dim) -> MLP head -> logits."""

    def __init__(self, latent_dim: int, width: int, hidden: int, head_hidden: int, num_classes: int = 10) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = Encoder(width, hidden, 2 * latent_dim)  # outputs (mu, log_var); the head reads mu
        self.head = nn.Sequential(nn.Linear(latent_dim, head_hidden), nn.ReLU(), nn.Linear(head_hidden, num_classes))

    def mu(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[:, : self.latent_dim]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mu(x))


@torch.inference_mode()
def _batched(fn, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def _fit(params: list[nn.Parameter], forward, x: torch.Tensor, y: torch.Tensor, val: tuple[torch.Tensor, torch.Tensor],
         val_logits, p: dict[str, Any], lr: float) -> list[dict[str, float]]:
    opt = torch.optim.Adam(params, lr=lr)
    steps = p["epochs"] * -(-len(x) // p["batch_size"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)  # lr decays to 0 over the run
    gen = torch.Generator().manual_seed(p["seed"])
    rows = []
    for epoch in range(1, p["epochs"] + 1):
        perm = torch.randperm(len(x), generator=gen)
        loss_sum, correct = 0.0, 0
        for i in tqdm(range(0, len(x), p["batch_size"]), desc=f"epoch {epoch}/{p['epochs']}", unit="batch", mininterval=2.0):
            idx = perm[i : i + p["batch_size"]]
            logits = forward(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y[idx]).sum().item()
        val_loss, val_m = scores(val_logits(), val[1], 10)
        rows.append({"epoch": epoch, "train_loss": round(loss_sum / len(x), 6), "train_accuracy": round(correct / len(x), 6),
                     "val_loss": round(val_loss, 6), "val_accuracy": round(val_m["accuracy"], 6)})
    return rows


def train(variant: str, vae_dir: Path, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], out: Path, p: dict[str, Any]) -> dict[str, Any]:
    """Train the head (``frozen``) or encoder + head (``finetune``) from the VAE's encoder."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown latent probe variant {variant!r}; expected one of {VARIANTS}")
    set_determinism(p["seed"])
    vae = load_autoencoder(vae_dir)
    if not vae.variational:
        raise ValueError(f"{vae_dir} holds an {vae.config.kind!r} model; the latent probe reads a VAE's mu")
    cfg = {"latent_dim": vae.config.latent_dim, "width": vae.config.width, "hidden": vae.config.hidden, "head_hidden": p["head_hidden"]}
    model = LatentClassifier(**cfg)
    model.encoder.load_state_dict(vae.encoder.state_dict())
    (x, y), val = splits["train"], splits["val"]
    print(f"latent probe ({variant}): {len(x)} training images, latent {cfg['latent_dim']}", file=sys.stderr)
    if variant == "frozen":  # the encoder never changes: compute mu once, train the head on it
        model.encoder.requires_grad_(False)
        mu_train, mu_val = _batched(model.mu, x), _batched(model.mu, val[0])
        rows = _fit(list(model.head.parameters()), model.head, mu_train, y, val, lambda: predict(model.head, mu_val), p, p["lr"])
    else:  # no dropout or batch norm: train and eval modes compute the same function
        rows = _fit(list(model.parameters()), model, x, y, val, lambda: predict(model, val[0]), p, p["finetune_lr"])
    model.eval()
    metrics: dict[str, Any] = {"variant": variant, "model": f"VAE encoder (latent {cfg['latent_dim']}) + MLP head, {variant}"}
    for split, (xs, ys) in splits.items():
        loss, m = scores(predict(model, xs), ys, 10)
        metrics[split] = {**m, "loss": round(loss, 6), "n": len(ys)}
    io.save_model(model, {**cfg, "variant": variant, "num_classes": 10}, out / "model.safetensors", out / "config.json")
    io.write_tsv(out / "curves.tsv", rows)
    io.write_json(out / "metrics.json", metrics)
    print(f"test accuracy {metrics['test']['accuracy']:.4f}", file=sys.stderr)
    return metrics


def load(run_dir: Path) -> LatentClassifier:
    state, config = io.load_state(run_dir / "model.safetensors", run_dir / "config.json")
    model = LatentClassifier(config["latent_dim"], config["width"], config["hidden"], config["head_hidden"], config["num_classes"])
    model.load_state_dict(state)
    return model.eval()

