"""Stages sample_ddpm and compare_samplers: the trained DDPM's three samplers side by side.

sample_ddpm writes, per sampler, samples.npz (conditional, balanced labels, guided) and
unconditional.npz in the format of :mod:`genpipe.scoring.samples`, a grid per class, an unconditional
grid, the denoising trajectory and metrics.json with the sampling wall time.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from genpipe.ddpm import plots as ddpm_plots
from genpipe.ddpm import diffusion
from genpipe.pipeline import io
from genpipe.scoring import samples
from genpipe.pipeline.plots import save_figure
from genpipe.pipeline.determinism import set_determinism


def balanced_labels(n: int, num_classes: int = 10) -> torch.Tensor:
    """0, 1, ..., 9, 0, 1, ...: every prefix of 10k samples is class-balanced."""
    return torch.arange(n) % num_classes


def sample_stage(model_dir: Path, name: str, out: Path, p: dict[str, Any]) -> dict[str, Any]:
    """Conditional (guided) and unconditional samples of one sampler, figures, and timings."""
    set_determinism(p["seed"])
    model, config = diffusion.load(model_dir)
    sp = p["samplers"][name]
    sched = diffusion.sampler(name, config["scheduler"], **diffusion.sampler_options(sp))
    cond = balanced_labels(sp["n"])
    uncond = torch.full((sp["n_unconditional"],), model.config.null_label)
    scale = p["guidance_scale"]
    prec = p["precision"]
    x_c, snaps, sec_c = diffusion.timed_sample(model, sched, cond, sp["steps"], scale, p["seed"], p["batch_size"],
                                               snapshots=p["trajectory_points"], precision=prec)
    x_u, _, sec_u = diffusion.timed_sample(model, sched, uncond, sp["steps"], 1.0, p["seed"] + 1, p["batch_size"], precision=prec)
    samples.save(out / "samples.npz", samples.to_uint8(x_c), cond.numpy(), diffusion.DATASET)
    samples.save(out / "unconditional.npz", samples.to_uint8(x_u), np.full(len(uncond), samples.UNCONDITIONAL), diffusion.DATASET)
    title = f"{name}, {sp['steps']} steps"
    ddpm_plots.class_grid(samples.to_uint8(x_c), cond.numpy(), p["grid_per_class"], f"{title}, guidance {scale}", out / "grid.png")
    ddpm_plots.plain_grid(samples.to_uint8(x_u[:100]), f"{title}, unconditional", out / "grid_unconditional.png")
    ddpm_plots.trajectory(snaps, f"denoising trajectory ({title})", out / "trajectory.png")
    nfe_per_sample = sp["steps"] * (2 if scale != 1.0 else 1)
    metrics = {
        "sampler": name,
        "steps": sp["steps"],
        "nfe": nfe_per_sample,
        "guidance_scale": scale,
        "n": sp["n"],
        "n_unconditional": sp["n_unconditional"],
        "seconds": round(sec_c, 2),
        "seconds_unconditional": round(sec_u, 2),
        "ms_per_sample": round(1000 * sec_c / max(1, sp["n"]), 3),
        "threads": torch.get_num_threads(),
        "precision": prec,
    }
    io.write_json(out / "metrics.json", metrics)
    print(f"sample_ddpm {name}: {sp['n']} conditional in {sec_c:.1f} s ({metrics['ms_per_sample']:.1f} ms/sample), "
          f"{sp['n_unconditional']} unconditional in {sec_u:.1f} s", file=sys.stderr)
    return metrics


def compare_stage(train_dir: Path, sample_root: Path, eval_root: Path, out: Path) -> dict[str, Any]:
    """Stage compare_samplers: per-sampler table (same-N FID, KID, accuracy, time), ratios to the
    1000-step sampler, the loss curve and quality versus network evaluations."""
    rows = []
    for name in diffusion.SAMPLERS:
        s = io.read_json(sample_root / name / "metrics.json")
        e = io.read_json(eval_root / f"ddpm_{name}" / "metrics.json")
        u = io.read_json(eval_root / f"ddpm_{name}_uncond" / "metrics.json")
        rows.append({
            "sampler": name, "steps": s["steps"], "nfe": s["nfe"], "n": e["n"],
            "fid": e["fid"], "kid_mean": e["kid_mean"],
            "n_same": e["same_n"]["n"], "fid_same_n": e["same_n"]["fid"], "kid_same_n": e["same_n"]["kid_mean"],
            "generation_accuracy": e["generation_accuracy"], "fid_unconditional": u["fid"],
            "ms_per_sample": s["ms_per_sample"], "seconds": s["seconds"], "precision": s["precision"],
        })
    table = pd.DataFrame(rows)
    if table["n_same"].nunique() != 1:
        raise ValueError(f"samplers were compared at different N: {dict(zip(table['sampler'], table['n_same']))}")
    io.write_tsv(out / "samplers.tsv", rows)
    save_figure(ddpm_plots.quality_vs_nfe(table, "DDPM samplers on MNIST (guided, conditional)"), out / "quality_vs_nfe.png")
    curves = pd.read_csv(train_dir / "curves.tsv", sep="\t")
    save_figure(ddpm_plots.loss_curve(curves, "train_ddpm: ε-prediction loss"), out / "loss.png")
    by = {r["sampler"]: r for r in rows}
    ref = by["ddpm"]
    metrics = {
        "n_same": ref["n_same"],
        **{name: {k: r[k] for k in ("steps", "nfe", "fid_same_n", "kid_same_n", "generation_accuracy", "ms_per_sample", "precision")}
           for name, r in by.items()},
        "fid_ratio_to_ddpm": {n: round(by[n]["fid_same_n"] / ref["fid_same_n"], 4) for n in ("ddim", "dpmpp")},
        "speedup_over_ddpm": {n: round(ref["ms_per_sample"] / by[n]["ms_per_sample"], 2) for n in ("ddim", "dpmpp")},
    }
    io.write_json(out / "metrics.json", metrics)
    return metrics
