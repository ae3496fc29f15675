"""Sample scoring shared by every generator: the samples.npz format, FID/KID, precision/recall, two judges."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file  # only to write a reference in the old metadata format

from genpipe.pipeline import io
from genpipe.scoring import samples
from genpipe.scoring.evaluation import ReferenceMismatchError, evaluate_samples, fid_kid, load_reference_tensor, reference_stats
from genpipe.scoring.spaces import ParserJudge, load_judge
from genpipe.models.resnet import ResNet, ResNetConfig
from genpipe.models.vit import ViT, ViTConfig

P = {"kid_subsets": 3, "kid_subset_size": 50, "seed": 0, "floor_n": 100, "same_n": 80, "prdc_n": 1000, "prdc_k": 3, "inception_weights": None}


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


def _classifier(tmp_path, dataset="mnist"):
    torch.manual_seed(0)
    cfg = ResNetConfig(depth_n=1, width=4, norm="bn")
    model = ResNet(cfg).eval()
    config = {**cfg.to_dict(), "dataset": dataset, "input_mean": 0.13, "input_std": 0.31, "feature_dim": model.feature_dim}
    d = tmp_path / "classifier"
    io.save_model(model, config, d / "model.safetensors", d / "config.json")
    return d, model


def _vit(tmp_path, name, dataset, num_classes, **extra):
    torch.manual_seed(1)
    model = ViT(ViTConfig(patch_size=7, dim=8, depth=1, heads=2, num_classes=num_classes)).eval()
    d = tmp_path / name
    io.save_model(model, {**model.config.to_dict(), **extra, "dataset": dataset}, d / "model.safetensors", d / "config.json")
    return d, model


def _networks(tmp_path, dataset="fashion_mnist"):
    """A classifier, a DINO backbone and a ViT judge of ``dataset``, and a reference in reference_stats' layout."""
    clf_dir, model = _classifier(tmp_path, dataset)
    dino_dir, vit = _vit(tmp_path, "dino", dataset, 0, run=dataset, epochs=1, images=10)
    judge_dir, judge = _vit(tmp_path, "judge", dataset, 10, input_mean=0.2, input_std=0.3)
    ref = tmp_path / "reference"
    ref.mkdir(exist_ok=True)
    g = torch.Generator().manual_seed(1)
    feats = {k: torch.randn(200, d, generator=g) for k, d in (("test", model.feature_dim), ("train", model.feature_dim), ("dino_test", 8), ("dino_train", 8))}
    config = {"dataset": dataset, "classifier_sha256": io.sha256_file(clf_dir / "model.safetensors"), "feature_dim": model.feature_dim,
              "dino_sha256": io.sha256_file(dino_dir / "model.safetensors"), "dino_dim": 8, "judge_sha256": io.sha256_file(judge_dir / "model.safetensors")}
    io.save_tensors(ref / "features.safetensors", feats, config)
    floor = {"fid": 1.0, "kid_mean": 0.0, "kid_std": 0.0, "n": 200}
    io.write_json(ref / "metrics.json", {"floor": floor, "dino": {"features": "DINO ViT test", "floor": floor}, "judges": {"judge": "supervised ViT"}})
    return (clf_dir, model), (dino_dir, vit), (judge_dir, judge), (ref, config)


def test_evaluate_samples_scores_in_two_spaces_with_two_judges(tmp_path):
    (clf_dir, model), (dino_dir, vit), (judge_dir, judge), (ref, config) = _networks(tmp_path)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (120, 28, 28), dtype=np.uint8)
    labels = np.concatenate([np.arange(100) % 10, np.full(20, -1)])
    samples.save(tmp_path / "s.npz", images, labels, "fashion_mnist")

    m = evaluate_samples(tmp_path / "s.npz", clf_dir, dino_dir, judge_dir, ref, tmp_path / "out", P)
    with torch.inference_mode():
        x = torch.as_tensor(images).float().div(255).unsqueeze(1)
        pred = model((x - 0.13) / 0.31).argmax(1).numpy()
        judged = judge((x - 0.2) / 0.3).argmax(1).numpy()
    assert m["generation_accuracy"] == pytest.approx((pred[:100] == labels[:100]).mean(), abs=1e-6)
    assert m["generation_accuracy_judge"] == pytest.approx((judged[:100] == labels[:100]).mean(), abs=1e-6)
    assert m["judges_agree"] == pytest.approx((pred == judged).mean(), abs=1e-6) and m["judge"] == "supervised ViT"
    assert m["n"] == 120 and m["n_conditional"] == 100 and sum(m["predicted_class_histogram"]) == 120
    assert set(m["generation_accuracy_per_class"]) == {str(c) for c in range(10)}
    assert m["fid"] > 0 and m["dino"]["fid"] > 0 and m["dino"]["dim"] == 8 and m["dino"]["same_n"]["n"] == 80
    assert m["inception_fid"] is None and "inception_weights is null" in m["inception_fid_reason"]
    assert m["prdc"]["n"] == 120 and m["prdc"]["k"] == 3  # min(prdc_n, 120 samples, 200 floor images)
    for space in ("classifier", "dino"):
        assert set(m["prdc"][space]) == set(m["prdc"]["floor"][space]) == {"precision", "recall", "density", "coverage"}
    assert io.read_json(tmp_path / "out" / "metrics.json") == m

    with pytest.raises(KeyError, match="has no 'inception_test'.*rerun reference_stats with the current params"):
        load_reference_tensor(ref, "inception_test")
    io.save_tensors(ref / "features.safetensors", {"test": torch.zeros(3, 2)}, {**config, "dino_sha256": "0" * 64})
    with pytest.raises(ReferenceMismatchError, match=f"dino_sha256 {'0' * 64}, but the network given has {config['dino_sha256']}; rerun"):
        evaluate_samples(tmp_path / "s.npz", clf_dir, dino_dir, judge_dir, ref, tmp_path / "out", P)
    io.save_tensors(ref / "features.safetensors", {"test": torch.zeros(3, 2)}, config)
    with pytest.raises(KeyError, match="features.safetensors.*dino_test.*rerun reference_stats with the current code"):
        evaluate_samples(tmp_path / "s.npz", clf_dir, dino_dir, judge_dir, ref, tmp_path / "out", P)
    # a reference written before the single "config" key (three metadata keys) is refused by name
    save_file({"test": torch.zeros(3, 2)}, str(ref / "features.safetensors"), metadata={"classifier_sha256": config["classifier_sha256"]})
    with pytest.raises(ReferenceMismatchError, match="records no classifier_sha256 .* rerun reference_stats"):
        evaluate_samples(tmp_path / "s.npz", clf_dir, dino_dir, judge_dir, ref, tmp_path / "out", P)
    samples.save(tmp_path / "f.npz", images, labels, "mnist")
    _networks(tmp_path)  # a valid reference again
    with pytest.raises(ValueError, match="holds mnist samples but .* is a fashion_mnist classifier"):
        evaluate_samples(tmp_path / "f.npz", clf_dir, dino_dir, judge_dir, ref, tmp_path / "out", P)


def test_networks_of_another_dataset_are_refused(tmp_path):
    (clf_dir, _), (dino_dir, _), (judge_dir, _), _ = _networks(tmp_path, "fashion_mnist")
    other, _ = _vit(tmp_path, "dino_mnist", "mnist", 0, run="mnist", epochs=1, images=10)
    with pytest.raises(ValueError, match="reference_stats fashion_mnist: the DINO run given was trained on mnist"):
        reference_stats("fashion_mnist", tmp_path / "data", clf_dir, other, judge_dir, tmp_path / "ref", P, {"k": 5, "temperature": 0.07})
    mnist_vit, _ = _vit(tmp_path, "vit_mnist", "mnist", 10, input_mean=0.1, input_std=0.3)
    with pytest.raises(ValueError, match="the second judge of fashion_mnist must be trained on it, this one on mnist"):
        load_judge("fashion_mnist", mnist_vit)


def test_the_parser_judge_sees_each_digit_white_in_the_top_left_cell():
    digits = np.random.default_rng(0).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    scenes = ParserJudge.scenes(object.__new__(ParserJudge), digits)
    assert scenes.shape == (2, 64, 64, 3) and scenes.dtype == np.uint8
    assert (scenes[:, 2:30, 2:30] == digits[..., None]).all()  # the same intensity on the three channels: white
    scenes[:, 2:30, 2:30] = 0
    assert not scenes.any()  # nothing else in the scene


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
