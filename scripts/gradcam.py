"""Stage gradcam: Grad-CAM overlays of the normalisation study's best model on Fashion-MNIST test images.

The best run is the one with the highest validation accuracy. For each class, one correctly and
one wrongly classified test image (seeded choice) are shown with true and predicted labels.
Writes <out>/gradcam.png and metrics.json (which model, its accuracies).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from genpipe.classify import classifier
from genpipe.data import datasets as data
from genpipe.pipeline import io
from genpipe.classify.gradcam import grad_cam
from genpipe.pipeline.params import load_params
from genpipe.pipeline.plots import plot_gradcam, save_figure
from genpipe.classify.train import predict, to_input


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True, type=Path, help="train_norm_study results directory")
    ap.add_argument("--data", required=True, type=Path, help="Fashion-MNIST root written by the download stage")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    seed = load_params("gradcam", args.params)["seed"]
    study = load_params("norm_study", args.params)

    names = [f"{n}-{s}" for n in study["norms"] for s in study["seeds"]]
    scores = {name: io.read_json(args.runs / name / "metrics.json") for name in names}
    best = max(names, key=lambda n: (scores[n]["val"]["accuracy"], n))
    model, config = classifier.load_model(args.runs / best)

    spec = data.get_spec("fashion_mnist")
    x_u8, y = data.load_split(spec, args.data, train=False)
    x = to_input(x_u8, config["input_mean"], config["input_std"])
    pred = predict(model, x).argmax(1)
    g = torch.Generator().manual_seed(seed)
    picks = []  # (class, correct?) -> index or None
    for c in range(len(spec.classes)):
        for correct in (True, False):
            idx = ((y == c) & ((pred == y) == correct)).nonzero().squeeze(1)
            picks.append(idx[torch.randint(len(idx), (1,), generator=g)].item() if len(idx) else None)
    chosen = torch.tensor([i for i in picks if i is not None])
    cams, _ = grad_cam(model, x[chosen], target=pred[chosen])
    cam_of = dict(zip(chosen.tolist(), cams.numpy()))
    panels = [None if i is None else (x_u8[i].numpy(), cam_of[i], spec.classes[y[i]], spec.classes[pred[i]]) for i in picks]
    save_figure(plot_gradcam(panels, len(spec.classes), f"Grad-CAM of {best} (best validation accuracy) for the predicted class"), args.out / "gradcam.png")
    io.write_json(args.out / "metrics.json", {"model": best, "val_accuracy": scores[best]["val"]["accuracy"], "test_accuracy": scores[best]["test"]["accuracy"]})


if __name__ == "__main__":
    main()
