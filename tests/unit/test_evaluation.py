"""Sample scoring shared by every generator: the samples.npz format, FID/KID, generation accuracy."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file  # only to write a reference in the old metadata format

from genpipe.pipeline import io
from genpipe.scoring import samples
from genpipe.scoring.evaluation import ReferenceMismatchError, evaluate_samples, fid_kid, load_reference, load_reference_tensor
from genpipe.models.resnet import ResNet, ResNetConfig

P = {"kid_subsets": 3, "kid_subset_size": 50, "seed": 0, "floor_n": 100, "same_n": 80, "inception_weights": None}


def test_samples_round_trip_and_bad_files_name_the_problem(tmp_path):
    imgs = np.zeros((3, 28, 28), np.uint8)
    samples.save(tmp_path / "s.npz", imgs, np.array([0, -1, 9]), "mnist")
    x, y, ds = samples.load(tmp_path / "s.npz")
    assert x.dtype == np.uint8 and x.shape == (3, 28, 28) and y.tolist() == [0, -1, 9] and ds == "mnist"
    with pytest.raises(samples.SamplesError, match="uint8"):
        samples.check(imgs.astype(np.float32), np.zeros(3))
    with pytest.raises(samples.SamplesError, match=r"shape \(N, 28, 28\)"):
        samples.check(np.zeros((3, 32, 32), np.uint8), np.zeros(3))
    with pytest.raises(samples.SamplesError, match="class 0..9"):
        samples.check(imgs, np.array([0, 1, 10]))
    np.savez(tmp_path / "bad.npz", images=imgs)
    with pytest.raises(samples.SamplesError, match="missing arrays"):
        samples.load(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(samples.SamplesError, match="not a readable"):
        samples.load(tmp_path / "junk.npz")


def test_to_uint8_rounds_and_clips():
    assert samples.to_uint8(torch.tensor([[[[0.0, 0.5, 1.2]]]])).tolist() == [[[0, 128, 255]]]


def test_fid_is_zero_for_identical_sets_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 8, generator=g, dtype=torch.float64)
    same = fid_kid(real, real.clone(), 3, 100, 0)
    shifted = fid_kid(real, real + 1.0, 3, 100, 0)
    assert abs(same["fid"]) < 1e-3
    assert shifted["fid"] == pytest.approx(8.0, rel=0.05)  # |mean shift|^2 = 8 dims x 1^2, same covariance
    assert abs(same["kid_mean"]) < 0.02 * shifted["kid_mean"]  # KID compares random subsets: near 0, not exactly


def test_fid_needs_more_samples_than_feature_dimensions():
    with pytest.raises(ValueError, match=r"more generated samples than feature dimensions \(8\); got 5"):
        fid_kid(torch.randn(100, 8), torch.randn(5, 8), 3, 10, 0)


def _classifier(tmp_path):
    torch.manual_seed(0)
    cfg = ResNetConfig(depth_n=1, width=4, norm="bn")
    model = ResNet(cfg).eval()
    config = {**cfg.to_dict(), "dataset": "mnist", "input_mean": 0.13, "input_std": 0.31, "feature_dim": model.feature_dim}
    d = tmp_path / "classifier"
    io.save_model(model, config, d / "model.safetensors", d / "config.json")
    return d, model


def test_evaluate_samples_scores_generation_accuracy_against_the_classifier(tmp_path):
    clf_dir, model = _classifier(tmp_path)
    sha = io.sha256_file(clf_dir / "model.safetensors")
    ref = tmp_path / "reference"
    ref.mkdir()
    g = torch.Generator().manual_seed(1)
    io.save_tensors(ref / "features.safetensors",
                    {"test": torch.randn(200, model.feature_dim, generator=g), "train": torch.randn(200, model.feature_dim, generator=g)},
                    {"dataset": "mnist", "classifier_sha256": sha, "feature_dim": model.feature_dim})
    io.write_json(ref / "metrics.json", {"floor": {"fid": 1.0, "kid_mean": 0.0, "kid_std": 0.0, "n": 200}})
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (120, 28, 28), dtype=np.uint8)
    labels = np.concatenate([np.arange(100) % 10, np.full(20, -1)])
    samples.save(tmp_path / "s.npz", images, labels, "mnist")

    m = evaluate_samples(tmp_path / "s.npz", clf_dir, ref, tmp_path / "out", P)
    with torch.inference_mode():
        x = (torch.as_tensor(images[:100]).float().div(255).unsqueeze(1) - 0.13) / 0.31
        pred = model(x).argmax(1).numpy()
    assert m["generation_accuracy"] == pytest.approx((pred == labels[:100]).mean(), abs=1e-6)
    assert m["n"] == 120 and m["n_conditional"] == 100 and sum(m["predicted_class_histogram"]) == 120
    assert set(m["generation_accuracy_per_class"]) == {str(c) for c in range(10)}
    assert m["fid"] > 0 and m["inception_fid"] is None and "inception_weights is null" in m["inception_fid_reason"]
    assert io.read_json(tmp_path / "out" / "metrics.json") == m

    with pytest.raises(KeyError, match="has no 'inception_test'.*rerun reference_stats with the current params"):
        load_reference_tensor(ref, "inception_test")
    io.save_tensors(ref / "features.safetensors", {"test": torch.zeros(3, 2)}, {"dataset": "mnist", "classifier_sha256": "0" * 64, "feature_dim": 2})
    with pytest.raises(ReferenceMismatchError, match=f"classifier sha256 {'0' * 64}, but the classifier given has {sha}; rerun reference_stats"):
        load_reference(ref, sha)
    # a reference written before the single "config" key (three metadata keys) is refused by name
    save_file({"test": torch.zeros(3, 2)}, str(ref / "features.safetensors"), metadata={"classifier_sha256": sha})
    with pytest.raises(ReferenceMismatchError, match="records no classifier sha256 .* rerun reference_stats"):
        load_reference(ref, sha)
    samples.save(tmp_path / "f.npz", images, labels, "fashion_mnist")
    with pytest.raises(ValueError, match="holds fashion_mnist samples but .* is a mnist classifier"):
        evaluate_samples(tmp_path / "f.npz", clf_dir, ref, tmp_path / "out", P)


def _random_fid_inception_state():
    """pytorch-fid's FID Inception architecture with random weights: a state dict of the right shapes."""
    from unittest import mock

    from pytorch_fid import inception

    with mock.patch.object(inception, "load_state_dict_from_url", lambda *a, **k: {}), \
         mock.patch.object(torch.nn.Module, "load_state_dict", lambda self, sd, *a, **k: None):
        return inception.fid_inception_v3().state_dict()


def test_inception_weights_are_checked_then_loaded(tmp_path):
    from genpipe.scoring.evaluation import INCEPTION_FILE, InceptionWeightsError, inception_features, load_inception
    from genpipe.pipeline.io import sha256_file

    with pytest.raises(InceptionWeightsError, match="does not exist"):
        load_inception(tmp_path / INCEPTION_FILE)
    state = _random_fid_inception_state()
    path = tmp_path / INCEPTION_FILE
    torch.save(state, path)
    with pytest.raises(InceptionWeightsError, match="does not start with 6726825d"):
        load_inception(path)  # random weights: not pytorch-fid's file
    model = load_inception(path, sha256_prefix=sha256_file(path)[:8])
    assert torch.equal(model.state_dict()["blocks.0.0.conv.weight"], state["Conv2d_1a_3x3.conv.weight"])  # the file's weights
    feats = inception_features(model, np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8))
    assert feats.shape == (3, 2048) and feats.dtype == torch.float64 and torch.isfinite(feats).all()
