"""Stage attack_fgsm: FGSM accuracy-versus-epsilon for the latent classifiers and the ResNet.

Attacks the frozen and fine-tuned VAE-encoder classifiers (train_latent_probe) and the
Fashion-MNIST ResNet (train_classifier) on the same test images, in the same [0, 1] pixel scale.
Writes <out>/curves.tsv (eps; per model the accuracy under an eps budget, which cannot rise, and
the single-step accuracy at exactly eps; a DVC plot), metrics.json,
curve.png and examples.png (clean / perturbation / adversarial with predictions).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from genpipe.vae import autoencoder
from genpipe.classify import classifier
from genpipe.data import datasets as data
from genpipe.pipeline import io
from genpipe.vae import latent_probe
from genpipe.robustness.adversarial import PixelInput, accuracy_under_attack, fgsm
from genpipe.pipeline.params import load_params
from genpipe.pipeline.plots import save_figure
from genpipe.vae.plots import plot_fgsm_curve, plot_fgsm_examples


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probe", required=True, type=Path, help="train_latent_probe results directory (frozen/, finetune/)")
    ap.add_argument("--classifier", required=True, type=Path, help="train_classifier run directory of fashion_mnist")
    ap.add_argument("--data", required=True, type=Path, help="Fashion-MNIST root written by the download stage")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p = load_params("attack_fgsm", args.params)
    lim = load_params("train_latent_probe", args.params)["eval_limit"] or None  # the probes' test set

    spec = data.get_spec("fashion_mnist")
    x_u8, y = data.load_split(spec, args.data, train=False)
    x, y = autoencoder.images(x_u8[:lim]), y[:lim]
    resnet, cfg = classifier.load_model(args.classifier)
    models = {f"latent_{v}": latent_probe.load(args.probe / v) for v in latent_probe.VARIANTS}
    models["resnet"] = PixelInput(resnet, cfg["input_mean"], cfg["input_std"])
    clean = {f"latent_{v}": io.read_json(args.probe / v / "metrics.json")["test"] for v in latent_probe.VARIANTS}
    clean["resnet"] = io.read_json(args.classifier / "metrics.json")["test"]

    # An attacker with budget eps may take any FGSM step eps' <= eps: an image counts as robust at eps only if
    # it is classified correctly at every grid value up to eps. That curve cannot rise; the single-step
    # curve (FGSM at exactly eps) can, once large steps overshoot (kept as <model>_step).
    grid = sorted(p["eps"])
    rows, preds = [], {}
    robust = {name: torch.ones(len(y), dtype=torch.bool) for name in models}
    for eps in grid:
        row = {"eps": eps}
        for name, model in models.items():
            step_acc, preds[name, eps] = accuracy_under_attack(model, x, y, eps)
            robust[name] &= preds[name, eps] == y
            row[name] = round(robust[name].float().mean().item(), 6)
            row[f"{name}_step"] = round(step_acc, 6)
        rows.append(row)
        print("eps %.3f: " % eps + ", ".join(f"{n} {100 * row[n]:.2f} % (single step {100 * row[n + '_step']:.2f} %)" for n in models))
    metrics = {"n": len(y), "eps": grid}
    for name in models:
        step = [r[f"{name}_step"] for r in rows]
        metrics[name] = {"accuracy": {str(r["eps"]): r[name] for r in rows}, "accuracy_single_step": dict(zip(map(str, grid), step)),
                         "clean_accuracy": clean[name]["accuracy"], "clean_n": clean[name]["n"],
                         "single_step_max_increase": round(max([0.0] + [b - a for a, b in zip(step, step[1:])]), 6)}
    io.write_tsv(args.out / "curves.tsv", rows)
    save_figure(plot_fgsm_curve(pd.DataFrame(rows), list(models), f"FGSM on {len(y)} Fashion-MNIST test images"), args.out / "curve.png")

    # examples: the first test images each model gets right but gets wrong at the example epsilon
    eps = p["example_eps"]
    panels = []
    for name, model in models.items():
        ok = (preds[name, 0.0] == y) & (accuracy_under_attack(model, x, y, eps)[1] != y)
        for i in ok.nonzero().squeeze(1)[: p["examples_per_model"]].tolist():
            adv = fgsm(model.eval(), x[i : i + 1], y[i : i + 1], eps)
            with torch.inference_mode():
                pa, pc = model(adv).argmax(1).item(), model(x[i : i + 1]).argmax(1).item()
            panels.append({"model": name, "clean": x[i, 0].numpy(), "adv": adv[0, 0].numpy(), "delta": (adv - x[i : i + 1])[0, 0].numpy(),
                           "label": int(y[i]), "pred_clean": pc, "pred_adv": pa})
    save_figure(plot_fgsm_examples(panels, spec.classes, eps, "FGSM examples"), args.out / "examples.png")
    io.write_json(args.out / "metrics.json", metrics)


if __name__ == "__main__":
    main()
