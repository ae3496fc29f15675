"""Host overhead of the DDPM training loop: our full step against a bare forward/backward/opt.step().

A tiny U-Net (``--channels 4``, params.yaml's levels, attention only in the 7×7 middle, batch 8 by default) makes the arithmetic
negligible, so what is left of a step is the loop itself: batch gathering, random numbers and
their transfers, the learning-rate update, gradient clipping, the EMA update, the loss sync and
NaN check, curves logging, checkpoint bookkeeping, the progress bar. Measured in one run, one
thread, interleaved step by step:

- ``full``: ``diffusion.Trainer.fit`` (params.yaml's train_ddpm with the tiny net; its ``log_every``
  and ``checkpoint_every``), each step timed between ``on_step`` calls;
- ``bare``: the same network and batch size, fixed tensors, ``model(x, t, y)`` -> MSE -> backward
  -> ``AdamW.step()`` (the optimizer as the trainer builds it), one step run from each ``on_step``.

The ratio full / bare (of the per-step medians: the shared machine's load spikes left out; and of
the means, the log and checkpoint steps in) is the loop's overhead; then a ``torch.profiler`` table of the full step's
host time by op, and each piece of the loop timed alone.

    PYTHONPATH=src python benchmarks/train_loop_overhead.py [--steps 600] [--channels 4] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from genpipe.ddpm import diffusion
from genpipe.models.unet import count_parameters
from genpipe.pipeline.params import load_params


def tiny(p: dict[str, Any], channels: int, batch: int) -> dict[str, Any]:
    return p | {"channels": channels, "mults": [1, 2, 2], "res_blocks": 1, "attn_resolutions": [], "heads": 1, "groups": 1,
                "dropout": 0.0, "batch_size": batch, "precision": "fp32"}


def data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 28, 28, generator=g) * 2 - 1, torch.randint(0, 10, (n,), generator=g)


class Paired:
    """A bare step of a second copy of the trainer's network and optimizer (as it builds them) on fixed
    tensors, run from ``Trainer.fit``'s ``on_step`` right after each full step, so that both are timed
    step by step, interleaved: the shared machine's swings hit them alike."""

    def __init__(self, p: dict[str, Any], workdir: Path) -> None:
        tr = diffusion.Trainer(p, workdir / "unused.pt")
        layout = diffusion.memory_format(p["precision"])
        self.model, self.opt = tr.model.to(memory_format=layout).train(), tr.opt
        b = p["batch_size"]
        self.x = torch.randn(b, 1, 28, 28).contiguous(memory_format=layout)
        self.t, self.y = torch.randint(0, p["timesteps"], (b,)), torch.randint(0, 11, (b,))
        self.full: list[float] = []
        self.bare: list[float] = []
        self.mark = 0.0

    def bare_step(self) -> None:
        loss = F.mse_loss(self.model(self.x, self.t, self.y), self.x)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def on_step(self, step: int) -> None:
        now = time.perf_counter()
        if step > 1:  # the first step includes the trainer's start
            self.full.append(now - self.mark)
        self.bare_step()
        self.mark = time.perf_counter()
        if step > 1:
            self.bare.append(self.mark - now)


def paired(p: dict[str, Any], steps: int, workdir: Path) -> Paired:
    x, y = data(steps * p["batch_size"])
    ck = workdir / "state.pt"
    ck.unlink(missing_ok=True)
    pair = Paired(p, workdir)
    pair.bare_step()  # warm-up
    diffusion.Trainer(p | {"epochs": 1}, ck).fit(x, y, on_step=pair.on_step)
    return pair


def pieces_us(p: dict[str, Any], reps: int = 300) -> dict[str, float]:
    """Each piece of the loop alone (µs per call) on the tiny net."""
    tr = diffusion.Trainer(p, Path(tempfile.gettempdir()) / "unused.pt")
    x, y = data(4096)
    perm = torch.randperm(len(x))
    b = p["batch_size"]
    idx = perm[:b]
    loss = tr.loss(x[idx], y[idx])
    loss.backward()
    bar = tqdm(total=10**9, mininterval=2.0, leave=False, file=open(os.devnull, "w"))
    ops = {
        "batch gather x0[idx], y[idx]": lambda: (x[idx], y[idx]),
        "noise, t, drop (seeded CPU generator)": lambda: (torch.randn((b, 1, 28, 28), generator=tr.gen),
                                                          torch.randint(0, p["timesteps"], (b,), generator=tr.gen),
                                                          torch.rand(b, generator=tr.gen)),
        "scheduler.add_noise": lambda: tr.sched.add_noise(x[idx], x[idx], idx % p["timesteps"]),
        "lr into param_groups": lambda: [g.__setitem__("lr", tr.lr_at(5)) for g in tr.opt.param_groups],
        "clip_grad_norm_": lambda: torch.nn.utils.clip_grad_norm_(tr.model.parameters(), p["grad_clip"]),
        "EMA update": lambda: tr.ema.update(tr.model),
        "opt.step (AdamW as built)": lambda: tr.opt.step(),
        "isfinite(loss) + loss.item()": lambda: (bool(torch.isfinite(loss)), loss.item()),
        "tqdm update(1)": lambda: bar.update(1),
    }
    out = {}
    for name, fn in ops.items():
        fn()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        out[name] = 1e6 * (time.perf_counter() - t0) / reps
    bar.close()
    return out


def profile(p: dict[str, Any], steps: int, workdir: Path, rows: int) -> None:
    from torch.profiler import ProfilerActivity
    x, y = data(steps * p["batch_size"])
    ck = workdir / "prof.pt"
    ck.unlink(missing_ok=True)
    trainer = diffusion.Trainer(p | {"epochs": 1}, ck)
    with torch.profiler.profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.fit(x, y)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"\n3. torch.profiler: self host time by op over {steps} full steps ({total / 1000 / steps:.2f} ms/step in ops; "
          f"top {rows})\n{'op':44} {'calls/step':>10} {'µs/step':>9} {'share':>6}")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:rows]:
        print(f"{e.key[:44]:44} {e.count / steps:10.1f} {e.self_cpu_time_total / steps:9.1f} {e.self_cpu_time_total / total:6.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=600, help="full steps, each followed by a bare one (params.yaml's log_every/checkpoint_every apply)")
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--profile-steps", type=int, default=50)
    ap.add_argument("--top", type=int, default=18)
    a = ap.parse_args()
    torch.set_num_threads(1)
    p = tiny(load_params("train_ddpm"), a.channels, a.batch_size)
    n = count_parameters(diffusion.build(p))
    print(f"torch {torch.__version__}, 1 thread; tiny U-Net {n:,} parameters, batch {a.batch_size}, "
          f"log_every {p['log_every']}, checkpoint_every {p['checkpoint_every']}, {a.steps} full + {a.steps} bare steps")
    with tempfile.TemporaryDirectory() as tmp:
        pair = paired(p, a.steps, Path(tmp))
        med_f, med_b = statistics.median(pair.full), statistics.median(pair.bare)
        mean_f, mean_b = statistics.fmean(pair.full), statistics.fmean(pair.bare)
        ratios = sorted(f / b for f, b in zip(pair.full, pair.bare))
        q = lambda r: ratios[int(r * (len(ratios) - 1))]  # noqa: E731
        print(f"\n1. per step over {len(pair.full)} interleaved step pairs: full {1000 * med_f:.3f} ms, bare {1000 * med_b:.3f} ms (medians); "
              f"overhead ratio full/bare {med_f / med_b:.2f} (of medians; per-pair ratios: median {q(0.5):.2f}, quartiles "
              f"[{q(0.25):.2f}, {q(0.75):.2f}]); all in (means, log and checkpoint steps included): {1000 * mean_f:.3f} vs "
              f"{1000 * mean_b:.3f} ms, ratio {mean_f / mean_b:.2f}; loop overhead {1000 * (med_f - med_b):.3f} ms/step (medians)")
        print("\n2. pieces of the loop alone (µs per call, tiny net)")
        for name, us in pieces_us(p).items():
            print(f"{name:44} {us:9.1f}")
        profile(p, a.profile_steps, Path(tmp), a.top)


if __name__ == "__main__":
    main()
