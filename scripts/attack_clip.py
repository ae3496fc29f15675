"""Stage attack_clip: FGSM and PGD on CLIP's zero-shot digit classifier, plain and defended (defend_clip).

Every model is scored the same way on the one-object test scenes (genpipe.robustness.clip_stages):
budget curves over attack.eps with attack_classifiers' PGD, PGD at defend_clip.eps on the held-out
(digit, colour) scenes, and evaluate_clip's whole clean benchmark (what a defense costs the zero-shot
generality). Writes <out>/curves.tsv (a DVC plot), curves.png, examples.png and metrics.json (last).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genpipe.pipeline import io
from genpipe.pipeline.io import ConfigMismatchError
from genpipe.pipeline.params import load_params
from genpipe.pipeline.plots import save_figure
from genpipe.robustness.classifiers import AttackError
from genpipe.robustness.clip_stages import attack_stage
from genpipe.robustness.plots import plot_budget_curves, plot_scene_examples
from genpipe.scenes.compose import held_out_pairs
from genpipe.scenes.dataset import ScenesError


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", required=True, type=Path, help="train_clip run directory (the plain variant)")
    ap.add_argument("--clip-metrics", required=True, type=Path, help="its evaluate_clip metrics.json (the eps = 0 check)")
    ap.add_argument("--defenses", required=True, type=Path, help="defend_clip output directory")
    ap.add_argument("--scenes", required=True, type=Path, help="make_scenes output directory")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    attack_p, p = load_params("attack", args.params), load_params("attack_clip", args.params)  # validate before any work
    dp, eval_p = load_params("defend_clip", args.params), load_params("evaluate_clip", args.params)
    scenes_p = load_params("make_scenes", args.params)
    try:
        metrics, rows, fig = attack_stage(args.clip, args.defenses, args.clip_metrics, args.scenes, attack_p, p, dp, eval_p,
                                          scenes_p["templates"], set(held_out_pairs(scenes_p["held_out"])))
    except (AttackError, ConfigMismatchError, ScenesError, ValueError) as exc:
        sys.exit(f"attack_clip: {exc}")
    io.write_tsv(args.out / "curves.tsv", rows)
    eps = dp["eps"]
    save_figure(plot_budget_curves(rows, metrics, "CLIP zero-shot digits on the one-object test scenes: accuracy under an L∞ budget ε",
                                   default_eps=eps, measure="zero-shot digit accuracy"), args.out / "curves.png")
    save_figure(plot_scene_examples(fig, eps, p["examples"]), args.out / "examples.png")
    io.write_json(args.out / "metrics.json", metrics)  # last: its presence means the run finished
    obs = metrics["observation"]
    print(f"attack_clip at eps {eps:g}: " + ", ".join(f"{m} {100 * a:.1f} %" for m, a in obs["robust_accuracy"].items())
          + f"; TeCoA / plain {obs['ratio_to_plain'].get('tecoa')}")


if __name__ == "__main__":
    main()
