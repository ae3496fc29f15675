"""Scene parser (genpipe.scenes.parser / detect): shapes, targets, decoding, matching, metrics."""

import numpy as np
import pytest
import torch

from genpipe.scenes import detect as D
from genpipe.scenes.parser import N_COLOURS, N_DIGITS, ParserConfig, SceneParser

TINY = ParserConfig(width=8, dilations=(1, 2), head_width=8, gn_groups=4)


def _truth():
    digits = np.array([[3, 7, -1], [1, -1, -1], [-1, -1, -1]])
    colours = np.array([[0, 6, -1], [2, -1, -1], [-1, -1, -1]])
    boxes = np.full((3, 3, 4), -1)
    boxes[0, 0] = (4, 6, 24, 30)
    boxes[0, 1] = (36, 34, 60, 61)
    boxes[1, 0] = (20, 10, 29, 38)
    return D.Truth(digits, colours, boxes)


def _perfect_outputs(truth, sigma=1.0):
    """Network outputs built from the targets: the decoder must give back the true objects."""
    t = D.make_targets(truth, 64, sigma)
    heat = torch.where(t["heat"] >= 1, 10.0, -10.0)
    return {
        "heat": heat,
        "digit": torch.nn.functional.one_hot(t["digit"], N_DIGITS).permute(0, 3, 1, 2).float(),
        "colour": torch.nn.functional.one_hot(t["colour"], N_COLOURS).permute(0, 3, 1, 2).float(),
        "box": t["box"],
    }


@pytest.mark.parametrize("norm", ["bn", "gn"])
def test_output_shapes_are_stride_4_and_any_size(norm):
    model = SceneParser(ParserConfig(**{**TINY.to_dict(), "dilations": (1, 2), "norm": norm})).eval()
    out = model(torch.rand(2, 3, 64, 64))
    assert out["heat"].shape == (2, 16, 16)
    assert out["digit"].shape == (2, 10, 16, 16) and out["colour"].shape == (2, 7, 16, 16)
    assert out["box"].shape == (2, 4, 16, 16) and (out["box"] >= 0).all()
    assert model(torch.rand(1, 3, 96, 128))["heat"].shape == (1, 24, 32)  # fully convolutional
    assert ParserConfig.from_dict(TINY.to_dict()) == TINY


def test_targets_put_a_peak_at_each_centre_cell_and_own_its_neighbours():
    t = D.make_targets(_truth(), 64, sigma=1.0)
    assert t["heat"].shape == (3, 16, 16)
    assert torch.nonzero(t["heat"][0] == 1).tolist() == [[4, 3], [11, 12]]  # (row, col) of centres (14, 18), (48, 47.5)
    assert t["heat"][2].max() == 0 and not t["pos"][2].any()
    assert t["pos"][0].sum() == 10  # centre + 4 neighbours per object
    assert t["digit"][0, 4, 3] == 3 and t["colour"][0, 11, 12] == 6
    # cell (4, 3) has centre (14, 18) px: l, t, r, b = (10, 12, 10, 12) px = / 4
    assert torch.allclose(t["box"][0, :, 4, 3], torch.tensor([2.5, 3.0, 2.5, 3.0]))


def test_decoding_a_hand_made_heatmap():
    heat = torch.full((1, 16, 16), -8.0)
    heat[0, 2, 3], heat[0, 2, 4] = 3.0, 1.0  # a peak and a lower neighbour (suppressed by the 3x3 max)
    heat[0, 10, 10] = -0.5  # sigmoid 0.38: kept at 0.3, dropped at 0.5
    digit, colour = torch.zeros(1, 10, 16, 16), torch.zeros(1, 7, 16, 16)
    digit[0, 8, 2, 3], colour[0, 4, 2, 3] = 5.0, 5.0
    box = torch.ones(1, 4, 16, 16)
    out = {"heat": heat, "digit": digit, "colour": colour, "box": box}
    dets = D.decode(out, threshold=0.3)[0]
    assert len(dets) == 2 and dets[0].score > dets[1].score
    assert (dets[0].digit, dets[0].colour, dets[0].box) == (8, 4, (10.0, 6.0, 18.0, 14.0))
    assert len(D.decode(out, threshold=0.5)[0]) == 1
    box[0, 0, 2, 3] = 100.0  # boxes are clipped to the image
    assert D.decode(out, threshold=0.5)[0][0].box[0] == 0.0


def test_perfect_outputs_decode_to_the_truth_and_score_one():
    truth = _truth()
    dets = D.decode(_perfect_outputs(truth), threshold=0.5)
    assert [len(d) for d in dets] == [2, 1, 0]
    assert {(d.digit, d.colour, d.box) for d in dets[0]} == {(3, 0, (4.0, 6.0, 24.0, 30.0)), (7, 6, (36.0, 34.0, 60.0, 61.0))}
    m = D.detection_metrics(dets, truth)
    for key in ("object_accuracy", "digit_accuracy", "colour_accuracy", "count_accuracy", "presence_recall", "presence_precision", "map_50", "map_50_95"):
        assert m[key] == pytest.approx(1.0), key
    assert m["objects"] == 3 and np.trace(np.array(m["confusion"]["digit"])) == 3


def test_matching_is_greedy_by_score_with_iou_half():
    true = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
    dets = [
        D.Detection(1, 0, (0, 0, 10, 9), 0.5),  # IoU 0.9 with object 0, lower score
        D.Detection(2, 0, (0, 0, 10, 10), 0.9),  # exact, higher score: takes object 0
        D.Detection(3, 0, (24, 24, 34, 34), 0.8),  # IoU 36 / 164 with object 1: too low
    ]
    assert D.match(dets, true).tolist() == [1, -1]
    assert D.iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))[0, 0] == pytest.approx(50 / 150)
    assert D.match([], true).tolist() == [-1, -1]


def test_metrics_count_misses_wrong_labels_and_false_positives():
    truth = _truth()
    dets = D.decode(_perfect_outputs(truth), threshold=0.5)
    wrong = [[D.Detection(9, dets[0][0].colour, dets[0][0].box, 0.9)], [], [D.Detection(0, 0, (0, 0, 5, 5), 0.4)]]
    m = D.detection_metrics(wrong, truth)
    assert m["objects"] == 3 and m["presence_recall"] == pytest.approx(1 / 3)
    assert m["object_accuracy"] == 0.0 and m["colour_accuracy"] == pytest.approx(1 / 3)
    assert m["presence_precision"] == 0.5 and m["count_accuracy"] == 0.0
    assert np.array(m["confusion"]["digit"])[10, 0] == 1  # the false positive on the empty image
    held = D.detection_metrics(dets, truth, object_mask=truth.digits == 7, with_map=False)
    assert held["objects"] == 1 and held["object_accuracy"] == 1.0
    fp = D.false_positive_metrics(wrong)
    assert fp["false_positive_rate"] == pytest.approx(2 / 3) and fp["max_score"] == 0.9


def test_shift_objects_moves_ink_and_boxes_together():
    truth = _truth()
    images = np.zeros((3, 64, 64, 3), np.uint8)
    masks = np.zeros((3, 64, 64), np.uint8)
    for n in range(3):
        for s in range(3):
            if truth.digits[n, s] >= 0:
                x0, y0, x1, y1 = truth.boxes[n, s]
                images[n, y0:y1, x0:x1] = 50 * (s + 1)
                masks[n, y0:y1, x0:x1] = s + 1
    new, moved = D.shift_objects(images, masks, truth, np.random.default_rng(0), prob=1.0)
    for n in range(2):
        for s in np.flatnonzero(truth.digits[n] >= 0):
            x0, y0, x1, y1 = moved.boxes[n, s]
            assert 0 <= x0 and x1 <= 64 and 0 <= y0 and y1 <= 64
            assert (new[n, y0:y1, x0:x1] == 50 * (s + 1)).all()
    assert (new[2] == 0).all()
    assert (new > 0).sum() == (images > 0).sum()


def _steps(n_steps):
    truth = _truth()
    rng = np.random.default_rng(0)
    images = (rng.random((3, 64, 64, 3)) * 255).astype(np.uint8)
    data = D.TrainData(np.repeat(images, 2, 0), np.zeros((6, 64, 64), np.uint8), D.Truth(*(np.repeat(a, 2, 0) for a in (truth.digits, truth.colours, truth.boxes))))
    p = dict(epochs=n_steps, batch_size=4, lr=1e-2, weight_decay=0.0, warmup_steps=1, sigma=1.0, box_weight=1.0,
             shift_prob=0.0, empty_prob=0.2, noise_prob=0.5, noise_max=0.3, threshold=0.3, precision="fp32", seed=3)
    model, rows, info = D.train(TINY, data, (images, truth), p)
    return model, rows, info


def test_training_steps_are_deterministic_and_lower_the_loss():
    m1, rows1, info = _steps(3)
    m2, rows2, _ = _steps(3)
    assert info["steps"] == 3 and [r["epoch"] for r in rows1] == [1, 2, 3]
    assert [r["train_loss"] for r in rows1] == [r["train_loss"] for r in rows2]
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    assert rows1[-1]["train_loss"] < rows1[0]["train_loss"]
    dets = D.parse(m1, np.zeros((5, 64, 64, 3), np.uint8), threshold=0.3, batch_size=2)
    assert len(dets) == 5 and all(isinstance(d, list) for d in dets)


def test_saved_parser_loads_back_with_the_same_outputs(tmp_path):
    from genpipe.pipeline.io import save_model
    from genpipe.scenes.parser_stages import load_parser, null_images

    torch.manual_seed(0)
    model = SceneParser(TINY).eval()
    save_model(model, TINY.to_dict() | {"stride": 4, "image_size": 64}, tmp_path / "model.safetensors", tmp_path / "config.json")
    loaded = load_parser(tmp_path)
    blank, noise = null_images(2, 3, 0.5, seed=0)
    assert blank.shape == (2, 64, 64, 3) and not blank.any() and noise.shape == (3, 64, 64, 3) and noise.max() <= 0.5 * 255
    x = torch.from_numpy(noise).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(model(x)["heat"], loaded(x)["heat"], atol=1e-6)
