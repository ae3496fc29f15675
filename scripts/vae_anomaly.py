"""Stage vae_anomaly: a VAE trained without one Fashion-MNIST class detects that class.

Trains the VAE of train_vae's architecture on the training split minus ``holdout_class``, scores
every test image by -ELBO and by reconstruction NLL (nats; higher = more anomalous), and reports
ROC-AUC for "held-out class = anomaly". Writes <out>/model.safetensors + config.json, curves.tsv,
roc.tsv (FPR and the TPR of both scores; a DVC plot), roc.png, scores.png and metrics.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from genpipe.vae import autoencoder
from genpipe.data import datasets as data
from genpipe.pipeline import io
from genpipe.vae.anomaly import roc
from genpipe.pipeline.params import load_params
from genpipe.pipeline.plots import save_figure
from genpipe.vae.plots import plot_roc, plot_score_histograms


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="Fashion-MNIST root written by the download stage")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p = load_params("vae_anomaly", args.params)
    held = p["holdout_class"]
    name = data.get_spec("fashion_mnist").classes[held]
    model, splits = autoencoder.run("vae", "fashion_mnist", args.data, args.out, p, exclude_class=held)

    x_test, y_test = splits["test"]
    terms = autoencoder.evaluate(model, x_test, p["seed"])
    is_anomaly = y_test == held
    scores = {"-ELBO": -terms["elbo"], "reconstruction NLL": terms["recon"]}
    aucs, curves = {}, {}
    for key, s in scores.items():
        aucs[key], curves[key] = roc(s, is_anomaly)
    # one row per FPR of the shared grid, one TPR column per score (a DVC plot)
    rows = [{"fpr": a["fpr"], "tpr_neg_elbo": a["tpr"], "tpr_recon": b["tpr"]} for a, b in zip(curves["-ELBO"], curves["reconstruction NLL"])]
    io.write_tsv(args.out / "roc.tsv", rows)
    save_figure(plot_roc({k: pd.DataFrame(v) for k, v in curves.items()}, aucs, f"VAE without '{name}': is a test image a {name}?"),
                args.out / "roc.png")
    save_figure(plot_score_histograms({k: v.numpy() for k, v in scores.items()}, is_anomaly.numpy(), name,
                                      "Anomaly scores of the test split"), args.out / "scores.png")
    per_class = {c: round(-terms["elbo"][y_test == c].mean().item(), 3) for c in range(10)}
    metrics = {
        "holdout_class": held, "holdout_name": name, "n_test": len(y_test), "n_anomalous": int(is_anomaly.sum()),
        "auc_neg_elbo": round(aucs["-ELBO"], 6), "auc_recon": round(aucs["reconstruction NLL"], 6),
        "mean_neg_elbo_per_class": {data.get_spec("fashion_mnist").classes[c]: v for c, v in per_class.items()},
        "train_images": len(splits["train"][0]),
    }
    io.write_json(args.out / "metrics.json", metrics)
    print(f"held out {name}: ROC-AUC -ELBO {aucs['-ELBO']:.4f}, reconstruction {aucs['reconstruction NLL']:.4f}")


if __name__ == "__main__":
    main()
