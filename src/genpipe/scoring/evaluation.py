"""Scores for generated images, shared by every generator: FID, KID, precision / recall / density /
coverage and generation accuracy, in two feature spaces and by two judges.

The first space is the pooled penultimate layer of the project's own ResNet classifier of the same
dataset (64-d; Inception weights are not reachable offline), the second the DINO ViT trained on the
dataset without labels; the second judge is another independently trained network
(:mod:`genpipe.scoring.spaces`). ``reference_stats`` computes the real features once per network
set (test split, plus ``floor_n`` training images for the real-vs-real floor), measures both judges
on the real test split and records the three networks' sha256; a :class:`Scorer` refuses a
reference made with other networks. FID and KID are computed by torchmetrics on these
features (an identity "feature extractor" receives the precomputed features); the Fréchet distance
in DINO features is the same computation in the other space.
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
from genpipe.scoring.manifold import prdc
from genpipe.dino.evaluate import knn_predict
from genpipe.scoring.spaces import JUDGES, DinoFeatures, load_judge
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


def reference_stats(dataset: str, data_root: Path, classifier_dir: Path, dino_dir: Path, judge_dir: Path, out: Path,
                    p: dict[str, Any], knn: dict[str, Any]) -> dict[str, Any]:
    """Test-split features in both spaces, the real-vs-real floors (``floor_n`` training images vs test), both
    judges' accuracy on the test split, and the DINO features' weighted k-NN accuracy (``knn``: k, temperature)."""
    spec = data.get_spec(dataset)
    extract, dino = ClassifierFeatures(classifier_dir), DinoFeatures(dino_dir)
    for name, got in (("classifier", extract.config["dataset"]), ("DINO run", dino.run)):
        if got != dataset:
            raise ValueError(f"reference_stats {dataset}: the {name} given was trained on {got}")
    judge = load_judge(dataset, judge_dir)
    x_test, y_test = data.load_split(spec, data_root, train=False)
    x_train, y_train = data.load_split(spec, data_root, train=True)
    pick = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(p["seed"]))[: p["floor_n"]]
    test_f, test_logits = extract(x_test)
    train_f, _ = extract(x_train[pick])
    dino_train_all, dino_test = dino(x_train), dino(x_test)
    y, pred, judged = torch.as_tensor(y_test).long(), test_logits.argmax(1), judge(x_test)
    knn_pred = knn_predict(dino_train_all, torch.as_tensor(y_train).long(), dino_test, k=knn["k"], temperature=knn["temperature"])
    floor = fid_kid(test_f, train_f, p["kid_subsets"], p["kid_subset_size"], p["seed"])
    dino_floor = fid_kid(dino_test, dino_train_all[pick], p["kid_subsets"], p["kid_subset_size"], p["seed"])
    config = {"dataset": dataset, "classifier_sha256": extract.sha256, "feature_dim": extract.dim, "dino_sha256": dino.sha256,
              "dino_dim": dino.dim, "judge_sha256": judge.sha256}
    tensors = {"test": test_f.float().contiguous(), "train": train_f.float().contiguous(),
               "dino_test": dino_test.float().contiguous(), "dino_train": dino_train_all[pick].float().contiguous()}
    if p["inception_weights"]:  # 2048-d Inception pool features of the test split, for inception_fid
        tensors["inception_test"] = inception_features(load_inception(Path(p["inception_weights"])), x_test).float().contiguous()
    io.save_tensors(out / "features.safetensors", tensors, config)  # one sorted-JSON metadata key: stable bytes
    what = f"{len(train_f)} training images vs the test split"
    acc = lambda a, b: round((a == b).float().mean().item(), 6)  # noqa: E731
    metrics = {"dataset": dataset, "classifier_sha256": extract.sha256, "feature_dim": extract.dim,
               "n_test": len(test_f), "floor": {**floor, "n": len(train_f), "what": what},
               "dino": {"features": f"DINO ViT train_dino/{dino.run} {dino.sha256[:12]}", "dim": dino.dim,
                        "knn_test_accuracy": acc(knn_pred, y), "floor": {**dino_floor, "n": len(train_f), "what": what}},
               "judges": {"judge": JUDGES[dataset][1], "classifier_test_accuracy": acc(pred, y), "judge_test_accuracy": acc(judged, y),
                          "agreement_on_test": acc(judged, pred)}}
    io.write_json(out / "metrics.json", metrics)
    return metrics


class Scorer:
    """The networks and real features a sample set is scored with (evaluate_samples, evaluate_guidance)."""

    def __init__(self, classifier_dir: Path, dino_dir: Path, judge_dir: Path, reference_dir: Path, p: dict[str, Any]) -> None:
        self.classifier, self.dino, self.p = ClassifierFeatures(classifier_dir), DinoFeatures(dino_dir), p
        self.dataset = self.classifier.config["dataset"]
        self.judge = load_judge(self.dataset, judge_dir)
        path = reference_dir / "features.safetensors"
        config = io.read_tensors_config(path) or {}
        for key, net in (("classifier_sha256", self.classifier), ("dino_sha256", self.dino), ("judge_sha256", self.judge)):
            if key not in config:
                raise ReferenceMismatchError(f"{path} records no {key} (written by an older reference_stats); rerun reference_stats")
            if config[key] != net.sha256:
                raise ReferenceMismatchError(f"{path} was computed with {key} {config[key]}, but the network given has {net.sha256}; "
                                             "rerun reference_stats")
        try:
            tensors, _ = io.load_tensors(path)
            self.real = {"classifier": tensors["test"].double(), "dino": tensors["dino_test"].double()}
            self.train = {"classifier": tensors["train"].double(), "dino": tensors["dino_train"].double()}
        except KeyError as exc:
            raise KeyError(f"{path}: {exc.args[0]}; rerun reference_stats with the current code") from None
        self.reference = io.read_json(reference_dir / "metrics.json")
        self._floors: dict[int, dict[str, dict[str, float]]] = {}  # n -> the real-vs-real precision/recall per space

    def _prdc(self, feats: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Precision / recall / density / coverage at n = min(prdc_n, N) real and generated, and the
        real-vs-real row at the same n (n training images vs the same n test images)."""
        p = self.p
        n = min(p["prdc_n"], *(len(f) for f in feats.values()), len(self.train["classifier"]))
        real_idx = torch.randperm(len(self.real["classifier"]), generator=torch.Generator().manual_seed(p["seed"]))[:n]
        if n not in self._floors:  # the same for every set of this n (evaluate_guidance scores eight)
            self._floors[n] = {space: prdc(self.real[space][real_idx], self.train[space][:n], p["prdc_k"]) for space in feats}
        out: dict[str, Any] = {"n": n, "k": p["prdc_k"], "floor": self._floors[n]}
        for space, f in feats.items():  # the first n samples: a class-balanced prefix for conditional sets
            out[space] = prdc(self.real[space][real_idx], f[:n], p["prdc_k"])
        return out

    def _fid(self, space: str, feats: torch.Tensor) -> dict[str, Any]:
        p = self.p
        k = min(p["same_n"], len(feats))
        return {**fid_kid(self.real[space], feats, p["kid_subsets"], p["kid_subset_size"], p["seed"]),
                "same_n": {"n": k, **fid_kid(self.real[space], feats[:k], p["kid_subsets"], p["kid_subset_size"], p["seed"])}}

    def score(self, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        """Every score of one sample set: uint8 images (N, 28, 28), labels (N,) with -1 for unconditional."""
        feats, logits = self.classifier(images)
        dino = self.dino(images)
        judged, pred = self.judge(images), logits.argmax(1)
        metrics: dict[str, Any] = {"dataset": self.dataset, "n": len(images), "feature_dim": self.classifier.dim,
                                   "features": f"ResNet classifier {self.classifier.sha256[:12]}"}
        metrics |= self._fid("classifier", feats)
        metrics["floor"] = self.reference["floor"]
        metrics["dino"] = {"features": self.reference["dino"]["features"], "dim": self.dino.dim, **self._fid("dino", dino),
                           "floor": self.reference["dino"]["floor"]}
        metrics["prdc"] = self._prdc({"classifier": feats, "dino": dino})
        cond = torch.as_tensor(labels >= 0)
        if cond.any():
            target = torch.as_tensor(labels)[cond]
            for key, answer in (("generation_accuracy", pred[cond]), ("generation_accuracy_judge", judged[cond])):
                metrics[key] = round((answer == target).float().mean().item(), 6)
            metrics["generation_accuracy_per_class"] = {
                str(c): round((pred[cond][target == c] == c).float().mean().item(), 6) for c in sorted(set(target.tolist()))}
            metrics["n_conditional"] = int(cond.sum())
        else:
            metrics["generation_accuracy"] = metrics["generation_accuracy_judge"] = None
        metrics["judge"] = self.reference["judges"]["judge"]
        metrics["judges_agree"] = round((pred == judged).float().mean().item(), 6)  # same class from both, all samples
        metrics["predicted_class_histogram"] = np.bincount(pred.numpy(), minlength=logits.shape[1]).tolist()
        return metrics


def evaluate_samples(samples_path: Path, classifier_dir: Path, dino_dir: Path, judge_dir: Path, reference_dir: Path, out: Path,
                     p: dict[str, Any]) -> dict[str, Any]:
    """Scores of one generator's samples.npz against the test split, with the floors for scale."""
    images, labels, dataset = samples.load(samples_path)
    scorer = Scorer(classifier_dir, dino_dir, judge_dir, reference_dir, p)
    if scorer.dataset != dataset:
        raise ValueError(f"{samples_path} holds {dataset} samples but {classifier_dir} is a {scorer.dataset} classifier")
    metrics = scorer.score(images, labels) | _inception_fid(images, reference_dir, p)
    io.write_json(out / "metrics.json", metrics)
    return metrics
