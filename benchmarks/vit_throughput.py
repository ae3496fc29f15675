"""ViT training speed, measured side by side in one run: our ViT (models/vit.py) against timm's.

Training throughput (img/s of a cross-entropy step with AdamW on a fixed 28 x 28 batch) of our ViT
with params.yaml's train_vit shape and of a ``timm.models.vision_transformer.VisionTransformer``
of the same shape (patch, width, depth, heads, MLP ratio, class token, pre-norm, final norm and a
linear head on the class token: the same parameter count), as a ratio to ours. The two models are
measured in interleaved rounds so a neighbour's load hits both alike; the medians are reported.

    PYTHONPATH=src python benchmarks/vit_throughput.py [--threads 1] [--steps 10] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from genpipe.classify.vit_stage import build
from genpipe.models.vit import count_parameters
from genpipe.pipeline.params import load_params


def timm_twin(p: dict) -> VisionTransformer:
    return VisionTransformer(img_size=28, patch_size=p["patch_size"], in_chans=1, num_classes=10, embed_dim=p["dim"],
                             depth=p["depth"], num_heads=p["heads"], mlp_ratio=p["mlp_ratio"], qkv_bias=True,
                             class_token=True, global_pool="token", drop_rate=p["dropout"])


class TrainStep:
    """One supervised step with AdamW on a fixed batch; ``ips(steps)`` times ``steps`` of them."""

    def __init__(self, model: torch.nn.Module, batch: int) -> None:
        self.model = model.train()
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(batch, 1, 28, 28, generator=g), torch.randint(0, 10, (batch,), generator=g)
        self.ips(3)  # warm-up

    def ips(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = F.cross_entropy(self.model(self.x), self.y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return steps * len(self.x) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (train_vit's rule runs 1)")
    ap.add_argument("--steps", type=int, default=10, help="training steps per measurement")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved measurements per model")
    ap.add_argument("--batch-size", type=int, default=None, help="default: train_vit.batch_size")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    p = load_params("train_vit")
    batch = a.batch_size or p["batch_size"]
    torch.manual_seed(0)
    models = {"ours": build(p, image_size=28, num_classes=10), "timm": timm_twin(p)}
    n_params = {k: count_parameters(m) for k, m in models.items()}
    steps = {k: TrainStep(m, batch) for k, m in models.items()}
    ips: dict[str, list[float]] = {k: [] for k in models}
    c0 = time.process_time()
    for _ in range(a.rounds):
        for k, s in steps.items():
            ips[k].append(s.ips(a.steps))
    med = {k: statistics.median(v) for k, v in ips.items()}
    print(f"ViT dim {p['dim']}, depth {p['depth']}, heads {p['heads']}, patch {p['patch_size']}, mlp {p['mlp_ratio']}; "
          f"batch {batch}, {a.threads} thread(s), {a.rounds} x {a.steps} steps each, torch {torch.__version__}; "
          f"{time.process_time() - c0:.0f} s CPU")
    print("| model | parameters | train img/s (median) | min-max | ratio to ours |")
    print("|---|---|---|---|---|")
    for k in models:
        print(f"| {k} | {n_params[k]:,} | {med[k]:.0f} | {min(ips[k]):.0f}-{max(ips[k]):.0f} | {med[k] / med['ours']:.2f} |")


if __name__ == "__main__":
    main()
