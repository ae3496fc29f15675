"""Stage sweep_guidance: the trained DDPM's samplers at each classifier-free guidance scale of a list.

One samples.npz per scale (the format of :mod:`genpipe.scoring.samples`), all from the same seed,
a grid of the same seeds across the scales, and the time of each; evaluate_guidance
(:mod:`genpipe.scoring.guidance`) scores them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genpipe.ddpm import diffusion
from genpipe.ddpm.stages import balanced_labels
from genpipe.pipeline import io
from genpipe.pipeline.determinism import set_determinism
from genpipe.pipeline.plots import image_grid, save_figure
from genpipe.scoring import samples


def sweep_file(guidance: float) -> str:
    """samples/guidance_<w>.npz: one samples.npz per guidance scale."""
    return f"guidance_{guidance:g}.npz"


def sweep_stage(model_dir: Path, name: str, out: Path, sweep: dict[str, Any], sample_p: dict[str, Any]) -> dict[str, Any]:
    """Stage sweep_guidance: ``sweep.samplers[name]`` conditional samples (balanced labels) at each guidance scale
    of ``sweep.guidance``, with sample_ddpm's sampler settings, batch size and precision. Every scale starts
    from the same seed, so the same noise: the grid shows one set of seeds across the scales."""
    scales = [float(w) for w in sweep["guidance"]]
    if len(set(scales)) != len(scales):
        raise ValueError(f"sweep_guidance.guidance: the scales must differ, got {sweep['guidance']}")
    set_determinism(sweep["seed"])
    model, config = diffusion.load(model_dir)
    sp, n = sample_p["samplers"][name], sweep["samplers"][name]
    labels = balanced_labels(n)
    rows, grid = {}, []
    for w in scales:
        sched = diffusion.sampler(name, config["scheduler"], **diffusion.sampler_options(sp))
        x, _, sec = diffusion.timed_sample(model, sched, labels, sp["steps"], w, sweep["seed"], sample_p["batch_size"],
                                           precision=sample_p["precision"])
        images = samples.to_uint8(x)
        samples.save(out / "samples" / sweep_file(w), images, labels.numpy(), diffusion.DATASET)
        rows[f"{w:g}"] = {"guidance": w, "nfe": sp["steps"] * (1 if w == 1.0 else 2), "seconds": round(sec, 2),
                          "ms_per_sample": round(1000 * sec / max(1, n), 3)}
        grid.append(images[:20].astype(np.float32) / 255.0)  # two samples of each digit, the same seeds at every scale
        print(f"sweep_guidance {name}: guidance {w:g}, {n} samples in {sec:.1f} s", file=sys.stderr)
    title = f"{name}, {sp['steps']} steps: the same seeds at each guidance scale"
    save_figure(image_grid(grid, [f"w = {w:g}" for w in scales], title, [str(c) for c in range(10)] * 2), out / "grid.png")
    metrics = {"sampler": name, "steps": sp["steps"], "n": n, "guidance": scales, "scales": rows, "seed": sweep["seed"],
               "seconds": round(sum(r["seconds"] for r in rows.values()), 2), "threads": torch.get_num_threads(),
               "precision": sample_p["precision"]}
    io.write_json(out / "metrics.json", metrics)
    return metrics
