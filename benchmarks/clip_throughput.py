"""CLIP training throughput (img/s) at the default size of params.yaml, measured side by side in one run.

Compares the two image towers (resnet, vit), channels-last (NHWC) with contiguous (NCHW) batches,
fp32 with bf16 autocast, batch sizes, and plain CLIP with the hard-negative loss (B extra texts at
most), interleaving the settings round by round so that load from other processes
affects them alike. Reports wall-clock img/s and CPU-time img/s (the latter is what one free
core would give). Usage:

    nice -n 19 python benchmarks/clip_throughput.py [--threads 1] [--steps 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import torch
from open_clip.loss import ClipLoss

from genpipe.clip import model as clip_model
from genpipe.clip.train import autocast, negclip_loss, param_groups
from genpipe.pipeline.params import load_params


def make(p: dict, batch_size: int, tower: str, nhwc: bool):
    torch.manual_seed(0)
    cfg = clip_model.model_cfg({**p["model"], "vision": {**p["model"]["vision"], "tower": tower}})
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    model = clip_model.build(cfg).to(memory_format=fmt).train()
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4, fused=True)
    ctx = cfg["text_cfg"]["context_length"]
    x = torch.randn(batch_size, 3, clip_model.IMAGE_SIZE, clip_model.IMAGE_SIZE).contiguous(memory_format=fmt)
    t = torch.randint(1, 49000, (2 * batch_size, ctx))
    t[:, ctx - 4] = 49407  # end token: ~12 tokens per caption
    t[:, ctx - 3 :] = 0
    return model, opt, x, t


def run(state, precision: str, hard: bool, steps: int) -> tuple[float, float]:
    model, opt, x, t = state
    b = len(x)
    loss_fn = ClipLoss()
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        with autocast(precision):
            fi = model.encode_image(x, normalize=True)
            ft = model.encode_text(t if hard else t[:b], normalize=True)
        fi, ft = fi.float(), ft.float()
        scale = model.logit_scale.exp()
        loss = negclip_loss(fi, ft[:b], ft[b:], scale) if hard else loss_fn(fi, ft, scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * b / (time.perf_counter() - w0), steps * b / (time.process_time() - c0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    p = load_params("train_clip")
    bs, tower = p["batch_size"], p["model"]["vision"]["tower"]
    other = "vit" if tower == "resnet" else "resnet"
    # (tower, channels-last, precision, hard negatives, batch); the first is the training default
    settings = [(tower, True, "fp32", False, bs), (tower, False, "fp32", False, bs), (other, True, "fp32", False, bs),
                (tower, True, "bf16", False, bs), (tower, True, "fp32", True, bs), (tower, True, "fp32", False, bs // 2),
                (tower, True, "fp32", False, bs * 2)]
    states = {s: make(p, s[4], s[0], s[1]) for s in settings}
    for s in settings:
        run(states[s], s[2], s[3], 2)  # warm-up
    best = {s: (0.0, 0.0) for s in settings}
    for _ in range(args.rounds):
        for s in settings:
            w, c = run(states[s], s[2], s[3], args.steps)
            best[s] = (max(best[s][0], w), max(best[s][1], c))
    print(f"CLIP, default {tower} tower, {args.threads} thread(s), best of {args.rounds} rounds x {args.steps} steps")
    print(f"{'tower':>6} {'layout':>6} {'precision':>9} {'loss':>8} {'batch':>5} {'params':>9} {'img/s wall':>10} {'img/s CPU':>9} {'vs default':>10}")
    ref = best[settings[0]][1]
    for s in settings:
        w, c = best[s]
        n = sum(q.numel() for q in states[s][0].parameters())
        print(f"{s[0]:>6} {'NHWC' if s[1] else 'NCHW':>6} {s[2]:>9} {'negclip' if s[3] else 'clip':>8} {s[4]:>5} {n:9,} {w:10.0f} {c:9.0f} {c / ref:10.2f}")

if __name__ == "__main__":
    main()
