"""Training throughput (img/s) of the ResNet-(6n+2) classifier, measured side by side in one run.

Compares memory formats (contiguous vs channels_last) and the five norm layers, and prints each
as a ratio to the pipeline's default (bn, channels_last). Usage:

    python benchmarks/classifier_throughput.py [--depth-n 1] [--steps 40] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from genpipe.models.norms import NORMS
from genpipe.models.resnet import ResNet, ResNetConfig


def throughput(norm: str, channels_last: bool, depth_n: int, steps: int, batch_size: int) -> float:
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = ResNet(ResNetConfig(depth_n=depth_n, norm=norm)).to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch_size, 1, 28, 28).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch_size,))
    for i in range(steps + 5):
        if i == 5:  # warm-up done
            t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch_size / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depth-n", type=int, default=1)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=128)
    a = ap.parse_args()
    print(f"ResNet-{6 * a.depth_n + 2}, batch {a.batch_size}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    base = throughput("bn", True, a.depth_n, a.steps, a.batch_size)
    rows = [("bn", "channels_last", base), ("bn", "contiguous", throughput("bn", False, a.depth_n, a.steps, a.batch_size))]
    rows += [(n, "channels_last", throughput(n, True, a.depth_n, a.steps, a.batch_size)) for n in NORMS if n != "bn"]
    print(f"{'norm':6} {'format':14} {'img/s':>8} {'ratio':>7}")
    for norm, fmt, ips in rows:
        print(f"{norm:6} {fmt:14} {ips:8.0f} {ips / base:7.2f}")


if __name__ == "__main__":
    main()
