"""DDPM training and sampling around our U-Net, with diffusers' schedulers (stages train_ddpm, sample_ddpm).

Training is ε-prediction: x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε from ``DDPMScheduler.add_noise``, loss
‖ε̂(x_t, t, c) - ε‖², the class dropped to the null label with probability ``p_uncond``. AdamW,
gradient clipping, an EMA of the weights (``trainloop.EMA``) which is what we sample; the loop
(progress, checkpoints, the NaN stop, curves) is :mod:`genpipe.pipeline.trainloop`'s.

Resumable: every ``checkpoint_every`` steps (and at the end) the full training state — model, EMA,
optimizer, RNG states, step — is written atomically to a checkpoint *outside* the declared outputs,
keyed by the params; a rerun with the same params continues from it, so a killed run loses at most
``checkpoint_every`` steps, and 2 epochs + 2 more equal 4 epochs straight, byte for byte (the
learning rate depends on the step only: linear warm-up, then constant). The checkpoint is read back
as plain tensors only (``genpipe.pipeline.checkpoint``): a pickled payload, or a truncated or corrupt
file, stops the stage with a ``CheckpointError`` naming it, before any output is written.

Sampling: ``ddpm`` (ancestral, 1000 steps), ``ddim`` (η = 0) and ``dpmpp`` (DPM-Solver++ 2M)
scheduler objects built from the training scheduler's config drive the EMA network, with
classifier-free guidance ε̂ = ε̂(∅) + w (ε̂(c) - ε̂(∅)) for conditional samples.

Precision (``precision`` of both stages): ``bf16`` runs the network under ``torch.autocast`` —
convolutions and matmuls in bfloat16 (and the ops that follow them on bfloat16 tensors); the
weights, the loss, the optimizer and the schedulers' arithmetic in float32. On this CPU (AMD EPYC
with avx512_bf16) it samples 2.0× and trains 1.3× faster than fp32; the same net's samples score
alike in both (README); ``fp32`` is the exact path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from tqdm.auto import tqdm

from genpipe.data import datasets as data
from genpipe.pipeline import io, trainloop
from genpipe.models.unet import UNet, UNetConfig, count_parameters
from genpipe.pipeline.determinism import set_determinism

NET_KEYS = ("channels", "mults", "res_blocks", "attn_resolutions", "heads", "dropout", "groups")
BETAS = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
SAMPLERS = ("ddpm", "ddim", "dpmpp")
PRECISIONS = ("fp32", "bf16")
DATASET = "mnist"


def noise_scheduler(p: dict[str, Any]) -> DDPMScheduler:
    """The forward process of training (``timesteps``, ``beta_schedule`` linear | cosine)."""
    return DDPMScheduler(num_train_timesteps=p["timesteps"], beta_schedule=BETAS[p["beta_schedule"]], clip_sample=True)


def scheduler_config(sched: SchedulerMixin) -> dict[str, Any]:
    """The keys the schedule was built with, sorted; values left at their defaults are left out, as
    diffusers' ``from_config`` does with its ``_use_default_values`` list, so each sampler class keeps
    its own defaults (DPM-Solver++'s "linspace" timestep spacing, not DDPM's "leading"). That list
    comes from a set: saved as is, its order (and the model file's bytes) followed the hash seed."""
    defaults = set(sched.config.get("_use_default_values", ()))
    return {k: v for k, v in sorted(sched.config.items()) if not k.startswith("_") and k not in defaults}


def sampler(name: str, train_scheduler_config: dict[str, Any], **options: Any) -> SchedulerMixin:
    """A sampling scheduler with the training schedule's betas. ``options`` (dpmpp only, from its
    params): ``algorithm_type`` dpmsolver++ | sde-dpmsolver++ and ``use_karras_sigmas``."""
    if options and name != "dpmpp":
        raise ValueError(f"sampler {name!r} takes no options; got {sorted(options)}")
    if name == "ddpm":
        return DDPMScheduler.from_config(train_scheduler_config)
    if name == "ddim":  # no clipping: DDIM's step reuses the unclipped ε with a clipped x0 (11 % accuracy instead of 82 %)
        return DDIMScheduler.from_config(train_scheduler_config, clip_sample=False)
    if name == "dpmpp":  # x0 kept in [-1, 1] by dynamic thresholding (like ddpm's clip_sample): 98 % accuracy instead of 83 %
        return DPMSolverMultistepScheduler.from_config(train_scheduler_config, solver_order=2, thresholding=True, sample_max_value=1.0,
                                                       **{"algorithm_type": "dpmsolver++", **options})
    raise ValueError(f"unknown sampler {name!r}; expected one of {SAMPLERS}")


def sampler_options(sp: dict[str, Any]) -> dict[str, Any]:
    """A sampler's params less its sizes: the scheduler options ``sampler`` takes."""
    return {k: v for k, v in sp.items() if k not in ("steps", "n", "n_unconditional")}


def to_model_range(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) -> float (N, 1, H, W) in [-1, 1]."""
    return x_uint8.float().div(127.5).sub(1.0).unsqueeze(1)


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    return x.add(1.0).div(2.0).clamp(0.0, 1.0)


def device() -> torch.device:
    """CUDA when there is one (the ``full`` preset on a GPU machine), else CPU. Every random number
    still comes from a seeded CPU generator, so CPU runs (and their resumption) are unchanged."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(precision: str, dev: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The network's forward pass in ``precision`` (see the module docstring)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    return torch.autocast(dev.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def memory_format(precision: str) -> torch.memory_format:
    """The faster activation layout for ``precision`` on this CPU: channels_last for fp32 (1.1× over
    contiguous), contiguous for bf16 (measured: bf16 in channels_last runs at half the speed)."""
    return torch.contiguous_format if precision == "bf16" else torch.channels_last


def build(p: dict[str, Any]) -> UNet:
    return UNet(UNetConfig(**{k: p[k] for k in NET_KEYS}))


def params_key(p: dict[str, Any]) -> str:
    """Identifies the run a checkpoint belongs to: every param except the number of epochs."""
    keep = {k: v for k, v in sorted(p.items()) if k not in ("epochs", "checkpoint_every")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def ema_warning(p: dict[str, Any], steps: int) -> str | None:
    """A warning when the EMA (what is sampled) still holds over 1 % of the first step's weights at the end:
    decay^steps. Seen on a GPU: the full preset (decay 0.999) cut to 938 steps kept 39 % and sampled noise."""
    share = p["ema_decay"] ** max(0, steps - 1)
    if share <= 0.01:
        return None
    return (f"train_ddpm: warning: after {steps} steps the EMA still holds {share:.0%} of the untrained weights "
            f"(ema_decay {p['ema_decay']} ** steps); lower train_ddpm.ema_decay or train longer")


class Trainer:
    """ε-prediction training of ``build(p)`` on x0 in [-1, 1] with labels; resumable from ``checkpoint``.
    The loop, EMA, NaN stop and checkpoints are :mod:`genpipe.pipeline.trainloop`'s; here is one step."""

    def __init__(self, p: dict[str, Any], checkpoint: Path) -> None:
        self.p, self.checkpoint = p, checkpoint
        torch.manual_seed(p["seed"])
        self.device = device()
        self.model = build(p).to(self.device)
        self.ema = trainloop.EMA(self.model, p["ema_decay"])
        self.opt = trainloop.adamw(self.model.parameters(), self.device, lr=p["lr"], weight_decay=p["weight_decay"])
        self.sched = noise_scheduler(p)
        self.gen = torch.Generator().manual_seed(p["seed"])
        self.step, self.rows = 0, []
        self.key = params_key(p)
        self.layout = memory_format(p["precision"])
        self.x0, self.y = torch.empty(0, 1, 28, 28), torch.empty(0, dtype=torch.long)
        self.steps_per_epoch = 1
        self._perm, self._perm_epoch = torch.empty(0, dtype=torch.long), -1

    def state(self) -> dict[str, Any]:
        return {"key": self.key, "step": self.step, "rows": self.rows, "model": self.model.state_dict(),
                "ema": self.ema.state_dict(), "opt": self.opt.state_dict(), "gen": self.gen.get_state(),
                "torch_rng": torch.get_rng_state()}

    def try_resume(self) -> bool:
        """Continue from the checkpoint if it belongs to these params (else start afresh and say why)."""
        ck = trainloop.resume(self.checkpoint, self.key)
        if ck is None:
            return False
        self.model.load_state_dict(ck["model"])
        self.ema.load_state_dict(ck["ema"])
        self.opt.load_state_dict(ck["opt"])
        self.gen.set_state(ck["gen"])
        torch.set_rng_state(ck["torch_rng"])
        self.step, self.rows = ck["step"], ck["rows"]
        return True

    def lr_at(self, step: int) -> float:
        return self.p["lr"] * min(1.0, (step + 1) / max(1, self.p["warmup_steps"]))

    def loss(self, x0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss of one batch (on the device). Its random numbers come from the seeded CPU generator,
        in the same order on every device, and are copied over without waiting."""
        noise = torch.randn(x0.shape, generator=self.gen)
        t = torch.randint(0, self.p["timesteps"], (len(x0),), generator=self.gen)
        drop = torch.rand(len(x0), generator=self.gen) < self.p["p_uncond"]
        noise, t, drop = (trainloop.to_device(v, self.device) for v in (noise, t, drop))
        y = torch.where(drop, torch.full_like(y, self.model.config.null_label), y)
        xt = self.sched.add_noise(x0, noise, t)
        with autocast(self.p["precision"], self.device):
            eps = self.model(xt.contiguous(memory_format=self.layout), t, y)
        return F.mse_loss(eps.float(), noise)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's (x0, y), gathered on the device; each epoch's order comes from (seed, epoch)
        alone, so a run resumes at any step."""
        epoch, i = divmod(self.step, self.steps_per_epoch)
        if self._perm_epoch != epoch:
            gen = torch.Generator().manual_seed(self.p["seed"] * 100_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(len(self.x0), generator=gen).to(self.device), epoch
        idx = self._perm[i * self.p["batch_size"] : (i + 1) * self.p["batch_size"]]
        return self.x0[idx], self.y[idx]

    def train_step(self) -> torch.Tensor:
        trainloop.set_lr(self.opt, self.lr_at(self.step))
        loss = self.loss(*self.batch())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.p["grad_clip"])
        self.opt.step()
        self.ema.update(self.model)
        return loss

    def row(self, mean_loss: float) -> dict[str, Any]:
        return {"step": self.step, "epoch": round(self.step / self.steps_per_epoch, 3), "loss": round(mean_loss, 5)}

    def fit(self, x0: torch.Tensor, y: torch.Tensor, on_step: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
        """Train to ``epochs`` epochs in total (continuing the checkpoint's count); one curves row per ``log_every`` steps."""
        p = self.p
        self.try_resume()
        self.model.to(memory_format=self.layout).train()
        self.x0, self.y = x0.to(self.device), y.to(self.device)  # resident: no copy of the batch per step
        self.steps_per_epoch = -(-len(x0) // p["batch_size"])
        total = self.steps_per_epoch * p["epochs"]
        return trainloop.run(self, total, p["log_every"], p["checkpoint_every"], self.checkpoint, "train_ddpm",
                             nan_hint=" (lower lr or raise grad_clip)", on_step=on_step)

    def ema_model(self) -> UNet:
        return self.ema.module.eval()


def guided_eps(model: UNet, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, scale: float) -> torch.Tensor:
    """ε̂ (float32) with classifier-free guidance; rows with the null label get the unconditional ε̂ only."""
    null = model.config.null_label
    tt = t.expand(len(x))
    if scale == 1.0 or bool((labels == null).all()):
        return model(x, tt, labels).float()
    both = model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([labels, torch.full_like(labels, null)])).float()
    cond, uncond = both.chunk(2)
    guided = uncond + scale * (cond - uncond)
    return torch.where((labels == null)[:, None, None, None], cond, guided)


@torch.inference_mode()
def sample(model: UNet, scheduler: SchedulerMixin, labels: torch.Tensor, steps: int, scale: float, seed: int,
           batch_size: int = 500, snapshots: int = 0, progress: bool = True, precision: str = "fp32",
           ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Images in [0, 1] (N, 1, 28, 28) for ``labels`` (null label = unconditional), and ``snapshots``
    {t: x_t} of the first batch at evenly spaced steps, the last being x_0 (key -1). Noise comes from
    ``seed``; the network runs in ``precision``, x_t and the scheduler in float32."""
    layout = memory_format(precision)
    model.eval().to(memory_format=layout)
    cfg, dev = model.config, next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    out, snaps = [], {}
    batches = range(0, len(labels), batch_size)
    bar = tqdm(total=len(batches) * steps, desc=f"sample {type(scheduler).__name__}", unit="step", mininterval=2.0, disable=not progress)
    for b in batches:
        lab = labels[b : b + batch_size].to(dev)
        x = torch.randn((len(lab), cfg.in_channels, cfg.image_size, cfg.image_size), generator=gen).to(dev)
        x = x * scheduler.init_noise_sigma
        scheduler.set_timesteps(steps)
        keep = {round(i * steps / max(1, snapshots - 1)) for i in range(snapshots - 1)}
        for k, t in enumerate(scheduler.timesteps):
            if b == 0 and k in keep:
                snaps[int(t)] = x.to("cpu", copy=True)
            xin = scheduler.scale_model_input(x, t).contiguous(memory_format=layout)
            with autocast(precision, dev):
                eps = guided_eps(model, xin, t.reshape(1).to(dev), lab, scale)
            x = scheduler.step(eps, t, x, generator=gen).prev_sample
            bar.update(1)
        if b == 0 and snapshots:
            snaps[-1] = x.to("cpu", copy=True)  # the final sample, x_0
        out.append(to_unit_range(x).cpu())
    bar.close()
    return torch.cat(out), snaps


def timed_sample(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, dict[int, torch.Tensor], float]:
    t0 = time.perf_counter()
    x, snaps = sample(*args, **kwargs)
    return x, snaps, time.perf_counter() - t0


def train_stage(data_root: Path, out: Path, checkpoint: Path, p: dict[str, Any]) -> dict[str, Any]:
    set_determinism(p["seed"])
    x, y = data.load_split(data.get_spec(DATASET), data_root, train=True)
    if p["train_limit"]:
        x, y = x[: p["train_limit"]], y[: p["train_limit"]]
    x0 = to_model_range(x)
    trainer = Trainer(p, checkpoint)
    print(f"train_ddpm: U-Net with {count_parameters(trainer.model):,} parameters on {len(x0)} MNIST images, "
          f"{p['epochs']} epochs", file=sys.stderr)
    if warning := ema_warning(p, -(-len(x0) // p["batch_size"]) * p["epochs"]):
        print(warning, file=sys.stderr)
    start_step, t0 = trainer.step, time.perf_counter()
    rows = trainer.fit(x0, y)
    seconds = time.perf_counter() - t0
    model = trainer.ema_model().cpu()
    config = {**model.config.to_dict(), "dataset": DATASET, "scheduler": scheduler_config(trainer.sched)}
    io.save_model(model, config, out / "model.safetensors", out / "config.json")
    io.write_tsv(out / "curves.tsv", rows)
    trained = (trainer.step - start_step) * p["batch_size"]
    metrics = {
        "final_loss": rows[-1]["loss"],
        "steps": trainer.step,
        "epochs": p["epochs"],
        "parameters": count_parameters(model),
        "precision": p["precision"],
        "train_seconds_this_run": round(seconds, 1),
        "train_img_per_s": round(trained / seconds, 1) if trained else None,
    }
    io.write_json(out / "metrics.json", metrics)
    print(f"train_ddpm: {trainer.step} steps, final loss {metrics['final_loss']:.4f}", file=sys.stderr)
    return metrics


def load(run_dir: Path) -> tuple[UNet, dict[str, Any]]:
    """The EMA U-Net of a train_ddpm run (eval mode) and its config (with the noise schedule)."""
    state, config = io.load_state(run_dir / "model.safetensors", run_dir / "config.json")
    model = UNet(UNetConfig(**{k: config[k] for k in UNetConfig.__dataclass_fields__}))
    model.load_state_dict(state)
    return model.eval().to(device(), memory_format=torch.channels_last), config
