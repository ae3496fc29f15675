"""Training and evaluation of the autoencoder / VAE (stages train_ae, train_vae, vae_anomaly).

Every run writes model.safetensors + config.json, curves.tsv (train and val loss terms per epoch)
and metrics.json (written last) with the test split's per-image reconstruction NLL, KL and ELBO
in nats, and the pixel MSE of the reconstruction.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from genpipe.data import datasets as data
from genpipe.pipeline import io
from genpipe.models.vae import Autoencoder, AutoencoderConfig
from genpipe.pipeline.params import load_params
from genpipe.pipeline.determinism import set_determinism

NET_KEYS = ("latent_dim", "width", "hidden")


def images(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) -> float (N, 1, H, W) in [0, 1]."""
    return x_uint8.float().div(255.0).unsqueeze(1)


def load_splits(dataset: str, data_root: Path, p: dict[str, Any], exclude_class: int | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """train / val / test as ([0, 1] images, labels); ``exclude_class`` is removed from train and val."""
    spec = data.get_spec(dataset)
    x_all, y_all = data.load_split(spec, data_root, train=True)
    x_test, y_test = data.load_split(spec, data_root, train=False)
    tr, va = data.train_val_split(len(x_all), p["val_size"], p["seed"])
    if exclude_class is not None:
        tr, va = tr[y_all[tr] != exclude_class], va[y_all[va] != exclude_class]
    tr = tr[: p["train_limit"]] if p["train_limit"] else tr
    lim = p["eval_limit"] or None
    return {
        "train": (images(x_all[tr]), y_all[tr]),
        "val": (images(x_all[va][:lim]), y_all[va][:lim]),
        "test": (images(x_test[:lim]), y_test[:lim]),
    }


@torch.inference_mode()
def evaluate(model: Autoencoder, x: torch.Tensor, seed: int, batch_size: int = 1000) -> dict[str, torch.Tensor]:
    """Per-image recon, KL, ELBO (nats; one z ~ q(z|x) per image, seeded) and reconstruction MSE."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {"recon": [], "kl": [], "elbo": [], "mse": []}
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        for k, v in model.elbo_terms(xb, gen).items():
            parts[k].append(v)
        parts["mse"].append((model.decode(model.encode(xb)[0]) - xb).square().flatten(1).mean(1))
    return {k: torch.cat(v) for k, v in parts.items()}


def summary(terms: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: round(v.mean().item(), 5) for k, v in terms.items()} | {"n": len(terms["recon"])}


def fit(model: Autoencoder, x_train: torch.Tensor, x_val: torch.Tensor, p: dict[str, Any], beta: float) -> list[dict[str, float]]:
    """Adam on mean(recon + beta * KL); one curves row per epoch. Stops on a non-finite loss."""
    opt = torch.optim.Adam(model.parameters(), lr=p["lr"])
    gen = torch.Generator().manual_seed(p["seed"])
    n, bs = len(x_train), p["batch_size"]
    rows = []
    for epoch in range(1, p["epochs"] + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        sums = {"recon": 0.0, "kl": 0.0}
        bar = tqdm(range(0, n, bs), desc=f"epoch {epoch}/{p['epochs']}", unit="batch", mininterval=2.0)
        for step, i in enumerate(bar):
            xb = x_train[perm[i : i + bs]]
            terms = model.loss_terms(xb, gen)
            loss = (terms["recon"] + beta * terms["kl"]).mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}, step {step}; lower lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for k in sums:
                sums[k] += terms[k].sum().item()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.1f}", refresh=False)
        val = summary(evaluate(model, x_val, seed=p["seed"]))
        rows.append({
            "epoch": epoch,
            "train_recon": round(sums["recon"] / n, 4),
            "train_kl": round(sums["kl"] / n, 4),
            "train_loss": round((sums["recon"] + beta * sums["kl"]) / n, 4),
            "val_recon": val["recon"],
            "val_kl": val["kl"],
            "val_loss": round(val["recon"] + beta * val["kl"], 4),
        })
    return rows


def run(kind: str, dataset: str, data_root: Path, out: Path, p: dict[str, Any], exclude_class: int | None = None) -> tuple[Autoencoder, dict]:
    """Train one AE/VAE with params ``p`` and write its artifacts; returns the model and splits."""
    set_determinism(p["seed"])
    splits = load_splits(dataset, data_root, p, exclude_class)
    cfg = AutoencoderConfig(kind=kind, **{k: p[k] for k in NET_KEYS})
    model = Autoencoder(cfg)
    beta = p.get("beta", 0.0) if kind == "vae" else 0.0
    print(f"{kind} on {dataset}: latent {cfg.latent_dim}, {len(splits['train'][0])} training images, beta={beta}", file=sys.stderr)
    t0 = time.perf_counter()
    rows = fit(model, splits["train"][0], splits["val"][0], p, beta)
    seconds = time.perf_counter() - t0
    print(f"trained in {seconds:.1f} s ({len(splits['train'][0]) * p['epochs'] / seconds:.0f} img/s)", file=sys.stderr)
    config = {**cfg.to_dict(), "dataset": dataset, "beta": beta, "exclude_class": exclude_class}
    io.save_model(model, config, out / "model.safetensors", out / "config.json")
    io.write_tsv(out / "curves.tsv", rows)
    return model, splits


def final_metrics(model: Autoencoder, x_test: torch.Tensor, seed: int) -> dict[str, Any]:
    m = summary(evaluate(model, x_test, seed))
    return {"test": m, "units": "nats per image (recon = -log p(x|z), Bernoulli pixels); mse per pixel in [0, 1]"}


def load(run_dir: Path) -> Autoencoder:
    """The trained AE/VAE of a run directory, in eval mode."""
    state, config = io.load_state(run_dir / "model.safetensors", run_dir / "config.json")
    model = Autoencoder(AutoencoderConfig(**{k: config[k] for k in ("kind", *NET_KEYS)}))
    model.load_state_dict(state)
    return model.eval()


def train_stage(kind: str, data_root: Path, out: Path, p: dict[str, Any]) -> dict[str, Any]:
    """Stages train_ae / train_vae on Fashion-MNIST: train, then write test metrics (last)."""
    model, splits = run(kind, "fashion_mnist", data_root, out, p)
    metrics = {"model": kind, **final_metrics(model, splits["test"][0], p["seed"])}
    io.write_json(out / "metrics.json", metrics)
    t = metrics["test"]
    print(f"test: recon {t['recon']:.2f}, KL {t['kl']:.2f}, ELBO {t['elbo']:.2f} nats/image, MSE {t['mse']:.4f}", file=sys.stderr)
    return metrics


def stage_main(kind: str, doc: str, argv: list[str] | None = None) -> None:
    """The command line of train_ae / train_vae (the same but for the model kind and params section)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="Fashion-MNIST root written by the download stage")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    train_stage(kind, args.data, args.out, load_params(f"train_{kind}", args.params))


@torch.inference_mode()
def sample_prior(model: Autoencoder, n: int, seed: int, batch_size: int = 1000) -> torch.Tensor:
    """Decode z ~ N(0, I): VAE samples; for the AE, the 'decoded Gaussian' baseline. (n, 1, 28, 28) in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.config.latent_dim, generator=gen)
    return torch.cat([model.decode(z[i : i + batch_size]) for i in range(0, n, batch_size)])


@torch.inference_mode()
def traversal(model: Autoencoder, x: torch.Tensor, dims: int, steps: int, scale: torch.Tensor) -> torch.Tensor:
    """(dims, steps, 1, H, W): z = mu(x) with dimension d moved by t * scale[d], t in [-3, 3]."""
    mu = model.encode(x[None])[0][0]
    ts = torch.linspace(-3.0, 3.0, steps)
    z = mu.repeat(dims, steps, 1)  # (dims, steps, latent)
    for d in range(dims):
        z[d, :, d] += ts * scale[d]
    return model.decode(z.flatten(0, 1)).unflatten(0, (dims, steps))


@torch.inference_mode()
def interpolate(model: Autoencoder, a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """Decoded (1 - t) * code(a) + t * code(b) for t in [0, 1]: (steps, 1, H, W)."""
    za, zb = model.encode(torch.stack([a, b]))[0]
    t = torch.linspace(0.0, 1.0, steps)[:, None]
    return model.decode((1 - t) * za + t * zb)


@torch.inference_mode()
def pca_2d(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Projection of rows of z on their first two principal components, and explained variance ratios."""
    zc = z - z.mean(0)
    _, s, vh = torch.linalg.svd(zc, full_matrices=False)
    return zc @ vh[:2].T, (s.square() / s.square().sum())[:2]
