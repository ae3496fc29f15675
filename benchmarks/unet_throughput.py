"""DDPM speed, measured side by side in one run: our U-Net against diffusers' UNet2DModel.

1. Training throughput (img/s, ε-prediction step with AdamW) of our U-Net (params.yaml's
   train_ddpm) and of a diffusers ``UNet2DModel`` of about the same parameter count and depth
   (same channels per level, one ResNet block per level, attention at 7×7, class embedding),
   each as a ratio to ours (fp32, channels_last); both nets also in bf16 autocast (the pipeline's
   default ``precision`` on this CPU), and ours with contiguous memory, ``torch.compile``, 1 thread.
2. Sampling time per sampler (ms per guided sample) with the pipeline's step counts.
3. FID/KID evaluation time of ``evaluate_samples`` for 1,000 and 10,000 samples (features included).

    PYTHONPATH=src python benchmarks/unet_throughput.py [--steps 10] [--rounds 9] [--no-compile]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel

from genpipe.ddpm import diffusion
from genpipe.scoring.evaluation import fid_kid
from genpipe.models.unet import count_parameters
from genpipe.pipeline.params import load_params


def diffusers_twin(p: dict) -> UNet2DModel:
    """UNet2DModel with our levels: channels * mults, res_blocks per level, attention at the last level."""
    chans = tuple(p["channels"] * m for m in p["mults"])
    n = len(chans)
    return UNet2DModel(
        sample_size=28, in_channels=1, out_channels=1, block_out_channels=chans, layers_per_block=p["res_blocks"],
        down_block_types=("DownBlock2D",) * (n - 1) + ("AttnDownBlock2D",),
        up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * (n - 1),
        norm_num_groups=p["groups"], attention_head_dim=chans[-1] // p["heads"], num_class_embeds=11, dropout=p["dropout"],
    )


class TrainStep:
    """One ε-prediction step with AdamW on a fixed batch; ``ips(steps)`` times ``steps`` of them."""

    def __init__(self, model: torch.nn.Module, forward, batch: int, channels_last: bool, precision: str = "fp32") -> None:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model, self.forward, self.precision = model.to(memory_format=fmt).train(), forward, precision
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        self.x = torch.randn(batch, 1, 28, 28).contiguous(memory_format=fmt)
        self.t, self.y = torch.randint(0, 1000, (batch,)), torch.randint(0, 11, (batch,))
        self.ips(3)  # warm-up (and compilation)

    def ips(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            with diffusion.autocast(self.precision, self.x.device):
                eps = self.forward(self.model, self.x, self.t, self.y)
            loss = F.mse_loss(eps.float(), self.x)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return steps * len(self.x) / (time.perf_counter() - t0)


def ours(m, x, t, y):
    return m(x, t, y)


def theirs(m, x, t, y):
    return m(x, t, class_labels=y).sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10, help="training steps per measurement")
    ap.add_argument("--rounds", type=int, default=9, help="interleaved measurements per model")
    ap.add_argument("--batch-size", type=int, default=None, help="default: train_ddpm.batch_size")
    ap.add_argument("--samples", type=int, default=10, help="guided samples per sampler for the timing")
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    p, sp = load_params("train_ddpm"), load_params("sample_ddpm")
    threads = torch.get_num_threads()
    a.batch_size = a.batch_size or p["batch_size"]
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {threads} threads, batch {a.batch_size}")

    rows = [("ours, channels_last", diffusion.build(p), ours, True, "fp32"),
            ("ours, contiguous", diffusion.build(p), ours, False, "fp32"),
            ("diffusers UNet2DModel, channels_last", diffusers_twin(p), theirs, True, "fp32"),
            ("diffusers UNet2DModel, contiguous", diffusers_twin(p), theirs, False, "fp32"),
            ("ours, bf16, contiguous", diffusion.build(p), ours, False, "bf16"),
            ("diffusers UNet2DModel, bf16, contiguous", diffusers_twin(p), theirs, False, "bf16")]
    if not a.no_compile:
        rows.append(("ours, channels_last, torch.compile", torch.compile(diffusion.build(p)), ours, True, "fp32"))
    steppers = [(name, count_parameters(model), TrainStep(model, fwd, a.batch_size, cl, prec)) for name, model, fwd, cl, prec in rows]
    rounds: dict[str, list[float]] = {name: [] for name, _, _ in steppers}
    for _ in range(a.rounds):  # interleaved rounds: drift in the machine's speed hits every model alike
        for name, _, st in steppers:
            rounds[name].append(st.ips(a.steps))
    results = [(name, n, rounds[name]) for name, n, _ in steppers]
    torch.set_num_threads(1)
    one = TrainStep(diffusion.build(p), ours, a.batch_size, True)
    results.append(("ours, channels_last, 1 thread", results[0][1], [one.ips(a.steps) for _ in range(3)]))
    torch.set_num_threads(threads)
    base = rounds[results[0][0]]
    print(f"\n1. training throughput (best of {a.rounds} rounds; ratio to ours: median over rounds of the same round's "
          f"ratio, [min, max])\n{'model':42} {'params':>9} {'img/s':>7} {'ratio':>6}  range")
    for name, n, ips in results:
        ratios = sorted(x / b for x, b in zip(ips, base))
        print(f"{name:42} {n:9,d} {max(ips):7.0f} {statistics.median(ratios):6.2f}  [{ratios[0]:.2f}, {ratios[-1]:.2f}]")

    print(f"\n2. sampling, guidance {sp['guidance_scale']} ({a.samples} samples, batch {a.samples}, {threads} threads, {sp['precision']})")
    net = diffusion.build(p).eval().to(memory_format=torch.channels_last)
    config = dict(diffusion.noise_scheduler(p).config)
    labels = torch.arange(a.samples) % 10
    times = {}
    for name in diffusion.SAMPLERS:
        steps = sp["samplers"][name]["steps"]
        sched = diffusion.sampler(name, config, **diffusion.sampler_options(sp["samplers"][name]))
        _, _, sec = diffusion.timed_sample(net, sched, labels, steps, sp["guidance_scale"], 0, a.samples,
                                           progress=False, precision=sp["precision"])
        times[name] = 1000 * sec / a.samples
        print(f"{name:6} {steps:5d} steps  {times[name]:9.1f} ms/sample  speed-up over ddpm {times['ddpm'] / times[name]:6.1f}")

    print("\n3. FID/KID evaluation (64-d features; the ResNet feature pass is included)")
    from genpipe.models.resnet import ResNet, ResNetConfig

    clf = ResNet(ResNetConfig()).eval()
    real = torch.randn(10000, 64, dtype=torch.float64)
    for n in (1000, 10000):
        imgs = torch.randn(n, 1, 28, 28).contiguous(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        with torch.inference_mode():
            feats = torch.cat([clf.features(imgs[i : i + 1000]) for i in range(0, n, 1000)]).double()
        t1 = time.perf_counter()
        fid_kid(real, feats, 50, 1000, 0)
        t2 = time.perf_counter()
        print(f"N = {n:6d}: features {t1 - t0:6.2f} s, FID + KID {t2 - t1:6.2f} s")


if __name__ == "__main__":
    main()
