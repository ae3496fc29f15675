"""Scores for generated images, shared by every generator: FID, KID and generation accuracy.

Features are the pooled penultimate layer of the project's own ResNet classifier of the same
dataset (64-d; Inception weights are not reachable offline). ``reference_stats`` computes the
real features once per classifier (test split, plus 10k training images for the real-vs-real
floor) and records the classifier's sha256; ``evaluate_samples`` refuses a reference made with
another classifier. FID and KID are computed by torchmetrics on these features (an identity
"feature extractor" receives the precomputed features).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from genpipe.data import datasets as data
from genpipe.pipeline import io
from genpipe.scoring import samples
from genpipe.classify.classifier import load_model
from genpipe.classify.train import to_input

# pytorch-fid's port of the TF Inception graph; torch.hub names files <name>-<first 8 hex of sha256>.pth
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_SHA256_PREFIX = "6726825d"


class ReferenceMismatchError(ValueError):
    """The reference statistics were computed with another classifier than the one given."""


class _Features(nn.Module):
    """Identity: torchmetrics receives features we computed ourselves."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f


class ClassifierFeatures:
    """uint8 images (N, 28, 28) -> classifier features (N, d) and logits (N, classes)."""

    def __init__(self, classifier_dir: Path) -> None:
        self.model, self.config = load_model(classifier_dir)
        self.sha256 = io.sha256_file(classifier_dir / "model.safetensors")
        self.dim = int(self.config["feature_dim"])

    @torch.inference_mode()
    def __call__(self, images: np.ndarray | torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(images)
        feats, logits = [], []
        for i in range(0, len(x), batch_size):
            f = self.model.features(to_input(x[i : i + batch_size], self.config["input_mean"], self.config["input_std"]))
            feats.append(f)
            logits.append(self.model.fc(f))
        return torch.cat(feats).double(), torch.cat(logits)


def fid_kid(real: torch.Tensor, fake: torch.Tensor, kid_subsets: int, kid_subset_size: int, seed: int) -> dict[str, Any]:
    """FID and KID (mean, std over subsets) between two feature sets (N, d)."""
    d = real.shape[1]
    for name, f in (("real", real), ("generated", fake)):
        if len(f) <= d:
            raise ValueError(f"FID needs more {name} samples than feature dimensions ({d}); got {len(f)}")
    fid = FrechetInceptionDistance(feature=_Features(d))
    fid.update(real, real=True)
    fid.update(fake, real=False)
    size = min(kid_subset_size, len(real), len(fake))
    kid = KernelInceptionDistance(feature=_Features(d), subsets=kid_subsets, subset_size=size)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    torch.manual_seed(seed)  # KID draws its subsets from the global generator
    kid_mean, kid_std = kid.compute()
    return {"fid": round(fid.compute().item(), 4), "kid_mean": round(kid_mean.item(), 6), "kid_std": round(kid_std.item(), 6), "kid_subset_size": size}


class InceptionWeightsError(ValueError):
    """The configured Inception weights are missing or are not pytorch-fid's FID Inception."""


def load_inception(path: Path, sha256_prefix: str = INCEPTION_SHA256_PREFIX) -> nn.Module:
    """pytorch-fid's FID InceptionV3 (2048-d pool features) with weights from a local file.

    The file is checked as torch.hub's ``check_hash`` does (its sha256 starts with the 8 hex digits
    in its name), then handed to pytorch-fid instead of its download.
    """
    from unittest import mock

    from pytorch_fid import inception

    path = Path(path)
    if not path.is_file():
        raise InceptionWeightsError(f"evaluate_samples.inception_weights: {path} does not exist (expected pytorch-fid's {INCEPTION_FILE})")
    digest = io.sha256_file(path)
    if not digest.startswith(sha256_prefix):
        raise InceptionWeightsError(f"{path}: sha256 {digest} does not start with {sha256_prefix}; expected pytorch-fid's {INCEPTION_FILE}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    with mock.patch.object(inception, "load_state_dict_from_url", lambda *a, **k: state):
        model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True)
    return model.eval()


@torch.inference_mode()
def inception_features(model: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = 100) -> torch.Tensor:
    """uint8 (N, 28, 28) -> (N, 2048) float64: grey to RGB, [0, 1], resized to 299 inside the model."""
    x = torch.as_tensor(images)
    out = [model(x[i : i + batch_size].float().div(255.0)[:, None].expand(-1, 3, -1, -1))[0].flatten(1)
           for i in range(0, len(x), batch_size)]
    return torch.cat(out).double()


def reference_stats(dataset: str, data_root: Path, classifier_dir: Path, out: Path, p: dict[str, Any]) -> dict[str, Any]:
    """Test-split features and the real-vs-real floor (``floor_n`` training images vs test)."""
    spec = data.get_spec(dataset)
    extract = ClassifierFeatures(classifier_dir)
    x_test, _ = data.load_split(spec, data_root, train=False)
    x_train, _ = data.load_split(spec, data_root, train=True)
    pick = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(p["seed"]))[: p["floor_n"]]
    test_f, _ = extract(x_test)
    train_f, _ = extract(x_train[pick])
    floor = fid_kid(test_f, train_f, p["kid_subsets"], p["kid_subset_size"], p["seed"])
    config = {"dataset": dataset, "classifier_sha256": extract.sha256, "feature_dim": extract.dim}
    tensors = {"test": test_f.float().contiguous(), "train": train_f.float().contiguous()}
    if p["inception_weights"]:  # 2048-d Inception pool features of the test split, for inception_fid
        tensors["inception_test"] = inception_features(load_inception(Path(p["inception_weights"])), x_test).float().contiguous()
    io.save_tensors(out / "features.safetensors", tensors, config)  # one sorted-JSON metadata key: stable bytes
    metrics = {"dataset": dataset, "classifier_sha256": extract.sha256, "feature_dim": extract.dim,
               "n_test": len(test_f), "floor": {**floor, "n": len(train_f), "what": f"{len(train_f)} training images vs the test split"}}
    io.write_json(out / "metrics.json", metrics)
    return metrics


def load_reference(reference_dir: Path, classifier_sha256: str) -> tuple[torch.Tensor, dict[str, Any]]:
    """Test-split features of a reference, checked against the classifier that will score samples."""
    path = reference_dir / "features.safetensors"
    config = io.read_tensors_config(path)
    if config is None or "classifier_sha256" not in config:
        raise ReferenceMismatchError(
            f"{path} records no classifier sha256 in its config metadata (written by an older reference_stats); rerun reference_stats")
    if config["classifier_sha256"] != classifier_sha256:
        raise ReferenceMismatchError(
            f"{path} was computed with classifier sha256 {config['classifier_sha256']}, but the classifier given has "
            f"{classifier_sha256}; rerun reference_stats")
    tensors, _ = io.load_tensors(path, ["test"])
    return tensors["test"].double(), io.read_json(reference_dir / "metrics.json")


def load_reference_tensor(reference_dir: Path, name: str) -> torch.Tensor:
    path = reference_dir / "features.safetensors"
    try:
        tensors, _ = io.load_tensors(path, [name])
    except KeyError as exc:
        raise KeyError(f"{exc.args[0]}; rerun reference_stats with the current params") from None
    return tensors[name].double()


def _inception_fid(images: np.ndarray, reference_dir: Path, p: dict[str, Any]) -> dict[str, Any]:
    """{"inception_fid": value} against the reference's Inception features, or None and the reason."""
    if not p["inception_weights"]:
        return {"inception_fid": None, "inception_fid_reason": (
            f"evaluate_samples.inception_weights is null: point it at pytorch-fid's {INCEPTION_FILE} (the hub is "
            "unreachable offline); FID above uses the classifier's features")}
    if len(images) <= 2048:
        return {"inception_fid": None,
                "inception_fid_reason": f"Inception FID needs more samples than its 2048 feature dimensions; got {len(images)}"}
    real = load_reference_tensor(reference_dir, "inception_test")
    fake = inception_features(load_inception(Path(p["inception_weights"])), images)
    return {"inception_fid": fid_kid(real, fake, p["kid_subsets"], p["kid_subset_size"], p["seed"])["fid"]}


def evaluate_samples(samples_path: Path, classifier_dir: Path, reference_dir: Path, out: Path, p: dict[str, Any]) -> dict[str, Any]:
    """FID/KID against the test split, the floor for scale, and generation accuracy of labelled samples."""
    images, labels, dataset = samples.load(samples_path)
    extract = ClassifierFeatures(classifier_dir)
    if extract.config["dataset"] != dataset:
        raise ValueError(f"{samples_path} holds {dataset} samples but {classifier_dir} is a {extract.config['dataset']} classifier")
    real, ref = load_reference(reference_dir, extract.sha256)
    feats, logits = extract(images)
    metrics: dict[str, Any] = {"dataset": dataset, "n": len(images), "feature_dim": extract.dim, "features": f"ResNet classifier {extract.sha256[:12]}"}
    metrics |= fid_kid(real, feats, p["kid_subsets"], p["kid_subset_size"], p["seed"])
    k = min(p["same_n"], len(feats))  # the first k samples: a class-balanced prefix for conditional sets
    metrics["same_n"] = {"n": k, **fid_kid(real, feats[:k], p["kid_subsets"], p["kid_subset_size"], p["seed"])}
    metrics["floor"] = ref["floor"]
    cond = labels >= 0
    if cond.any():
        pred = logits.argmax(1)[torch.as_tensor(cond)]
        target = torch.as_tensor(labels[cond])
        metrics["generation_accuracy"] = round((pred == target).float().mean().item(), 6)
        metrics["generation_accuracy_per_class"] = {
            str(c): round((pred[target == c] == c).float().mean().item(), 6) for c in sorted(set(labels[cond].tolist()))}
        metrics["n_conditional"] = int(cond.sum())
    else:
        metrics["generation_accuracy"] = None
    metrics["predicted_class_histogram"] = np.bincount(logits.argmax(1).numpy(), minlength=logits.shape[1]).tolist()
    metrics |= _inception_fid(images, reference_dir, p)
    io.write_json(out / "metrics.json", metrics)
    return metrics

