"""Stage attack_classifiers: FGSM and PGD (L∞) on the Fashion-MNIST ResNet and the supervised ViT.

Attacks both models in the same [0, 1] pixel space on the same first test images
(genpipe.robustness.classifiers). Writes <out>/curves.tsv (eps; per model and attack the budget
curve and the raw one; a DVC plot), curves.png, transfer.png, examples.png and metrics.json
(the curves, the transfer matrix at attack.transfer_eps, the eps = 0 check against each model's
own predictions, and the observation: which model is more robust, whether examples transfer).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genpipe.pipeline import io
from genpipe.pipeline.params import load_params
from genpipe.pipeline.plots import save_figure
from genpipe.robustness.classifiers import LOADERS, AttackError, examples, run
from genpipe.robustness.plots import plot_budget_curves, plot_examples, plot_transfer


def model_arg(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=RUN_DIR, got {text!r}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, action="append", type=model_arg, metavar="NAME=RUN_DIR",
                    help=f"a model to attack and its run directory; NAME one of {', '.join(LOADERS)} (give two)")
    ap.add_argument("--data", required=True, type=Path, help="Fashion-MNIST root written by the download stage")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    p = load_params("attack", args.params)  # validate before any work
    runs = dict(args.model)
    try:
        if len(runs) != len(args.model):
            raise AttackError(f"a model is named twice in --model {[n for n, _ in args.model]}")
        metrics, rows, fig = run(runs, args.data, p)
    except AttackError as exc:
        raise SystemExit(f"attack_classifiers: {exc}")
    io.write_tsv(args.out / "curves.tsv", rows)
    save_figure(plot_budget_curves(rows, metrics), args.out / "curves.png")
    save_figure(plot_transfer(metrics), args.out / "transfer.png")
    save_figure(plot_examples(examples(fig, p["transfer_eps"], p["examples_per_model"]), fig["classes"], p["transfer_eps"]),
                args.out / "examples.png")
    io.write_json(args.out / "metrics.json", metrics)  # last: its presence means the run finished
    obs = metrics["observation"]
    print("more robust over the eps grid: " + ", ".join(f"{a} {m} (+{100 * obs['robust_margin'][a]:.2f} points of mean accuracy)"
                                                        for a, m in obs["more_robust"].items()))


if __name__ == "__main__":
    main()
