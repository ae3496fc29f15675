"""Grounded detection (issue 15): queries, Hungarian matching, the set loss, bad inputs, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genpipe.clip import model as clip_model
from genpipe.grounding import train as gtrain
from genpipe.grounding.backbones import build_backbone
from genpipe.grounding.evaluate import figure_picks, load_run
from genpipe.grounding.matching import hungarian, match_batch, set_loss
from genpipe.grounding.model import GroundingConfig, GroundingDetector
from genpipe.grounding.queries import (KINDS, VOCAB, VOCAB_KIND, Query, eval_queries, match_matrix, parse_query, query_id,
                                       sample_queries)
from genpipe.models.vit import ViT, ViTConfig
from genpipe.pipeline import io
from genpipe.scenes.compose import compose_scenes
from genpipe.scenes.dataset import save_scenes

W = {"match": 2.0, "l1": 5.0, "giou": 2.0}
# one scene: a red 3 top-left (cell 0), a blue 7 bottom-right (cell 3)
DIGITS, COLOURS, CELLS = np.array([3, 7, -1]), np.array([0, 2, -1]), np.array([0, 3, -1])


def test_every_query_reads_back_from_its_text_and_names_what_it_says():
    assert all(parse_query(q.text) == q for q in VOCAB) and len(VOCAB) == 70 + 7 + 10 + 40
    m = match_matrix(DIGITS, COLOURS, CELLS)  # (V, 3)
    named = {t: np.flatnonzero(m[query_id(t)]).tolist() for t in
             ("a red 3", "a blue digit", "a 7", "the 3 on the left", "the 7 at the bottom", "the 7 on the left", "a red 7", "a green digit")}
    assert named == {"a red 3": [0], "a blue digit": [1], "a 7": [1], "the 3 on the left": [0], "the 7 at the bottom": [1],
                     "the 7 on the left": [], "a red 7": [], "a green digit": []}


@pytest.mark.parametrize("text, word", [("a purple 3", "'purple'"), ("a red 12", "'12'"), ("the x on the left", "'x'"),
                                        ("a mauve digit", "'mauve'")])
def test_a_query_naming_an_unknown_colour_or_digit_stops_naming_it(text, word):
    with pytest.raises(ValueError, match=word):
        parse_query(text)
    with pytest.raises(ValueError, match="none of the forms"):
        parse_query("two red digits")


def test_hungarian_matching_on_a_hand_case():
    # predictions 0, 1, 2 vs targets A, B: the cheapest assignment is 2->A, 0->B (cost 1 + 2 = 3 < 0->A 1->B = 4 + 3)
    rows, cols = hungarian(np.array([[4.0, 2.0], [5.0, 3.0], [1.0, 6.0]]))
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (2, 0)]
    # boxes: prediction 1 sits on target 0 and prediction 3 on target 1; the others far off
    targets = torch.tensor([[[0.25, 0.25, 0.2, 0.2], [0.75, 0.75, 0.3, 0.3]]])
    boxes = torch.tensor([[[0.5, 0.5, 0.1, 0.1], [0.25, 0.25, 0.2, 0.2], [0.1, 0.9, 0.1, 0.1], [0.75, 0.75, 0.3, 0.3]]])
    b, p, t = match_batch(torch.zeros(1, 4), boxes, targets, torch.tensor([2]), W)
    assert b.tolist() == [0, 0] and dict(zip(t.tolist(), p.tolist())) == {0: 1, 1: 3}


def test_l1_and_giou_losses_on_a_hand_case():
    # prediction [0.4, 0.6] x [0.4, 0.6] vs target [0.5, 0.7] x [0.4, 0.6]: L1 = 0.1 (cx only);
    # IoU = 0.02 / 0.06 = 1/3, enclosing box 0.3 x 0.2 = union, so GIoU = 1/3 and its loss 2/3
    out = set_loss(torch.tensor([[0.0]]), torch.tensor([[[0.5, 0.5, 0.2, 0.2]]]), torch.tensor([[[0.6, 0.5, 0.2, 0.2]]]),
                   torch.tensor([1]), W)
    assert out["l1"].item() == pytest.approx(0.1, abs=1e-6) and out["giou"].item() == pytest.approx(2 / 3, abs=1e-5)
    focal = 0.25 * 0.5**2 * np.log(2)  # p = 0.5 on a positive: alpha (1 - p)^gamma (-log p)
    assert out["match"].item() == pytest.approx(focal, rel=1e-5)
    assert out["total"].item() == pytest.approx(2 * focal + 5 * 0.1 + 2 * 2 / 3, rel=1e-5)


def test_the_absent_object_rule():
    """A query naming nothing in the scene: no target, so every slot is a negative and no box is pulled."""
    m = match_matrix(DIGITS, COLOURS, CELLS)
    rng = np.random.default_rng(0)
    absent_only = [0, 0, 0, 0, 1.0]
    allowed = np.ones(len(VOCAB), bool)
    ids = sample_queries(DIGITS, COLOURS, CELLS, 50, absent_only, rng, allowed)
    assert not m[ids].any()
    assert {VOCAB_KIND[i] for i in ids} == set(range(len(KINDS)))  # every kind has absent queries
    # hard negatives: an absent digit+colour or position query shares a digit or a colour with an object ("a blue 3", "the 7 on the left")
    assert all(VOCAB[i].digit in (3, 7) or VOCAB[i].colour in (0, 2) for i in ids if VOCAB[i].kind in ("digit_colour", "position"))
    logits = torch.tensor([[0.0, -2.0, 1.0]])
    out = set_loss(logits, torch.rand(1, 3, 4) * 0.5 + 0.25, torch.zeros(1, 3, 4), torch.tensor([0]), W)
    p = torch.sigmoid(logits)
    assert out["l1"].item() == 0 and out["giou"].item() == 0
    assert out["match"].item() == pytest.approx(float((0.75 * p**2 * -torch.log(1 - p)).sum()), rel=1e-5)
    # the test set asks each scene one absent query per kind, after every query naming one of its objects
    q = eval_queries(DIGITS, COLOURS, CELLS, np.random.default_rng(0))
    assert [bool(m[i].any()) for i in q].count(False) == len(KINDS) and {VOCAB[i].kind for i in q} == set(KINDS)


def test_the_detector_takes_plain_tensors_and_checks_its_token_grid():
    torch.manual_seed(0)
    cfg = GroundingConfig(image_dim=12, text_dim=20, grid=4, dim=16, heads=2, fusion_layers=1, decoder_layers=1, slots=3)
    det = GroundingDetector(cfg)
    mask = torch.tensor([[True] * 4 + [False] * 2] * 2)
    out = det(torch.randn(2, 16, 12), torch.randn(2, 6, 20), mask)
    assert out["boxes"].shape == (2, 3, 4) and out["logits"].shape == (2, 3) and out["enc_logits"].shape == (2, 16)
    assert bool(((out["boxes"] > 0) & (out["boxes"] < 1)).all())
    with pytest.raises(ValueError, match="grid=4"):
        det(torch.randn(2, 25, 12), torch.randn(2, 6, 20), mask)


def _vit(tmp, image_size=64, channels=3, patch=16, dim=16):
    torch.manual_seed(0)
    v = ViT(ViTConfig(image_size=image_size, patch_size=patch, in_channels=channels, dim=dim, depth=1, heads=2, num_classes=0))
    io.save_model(v, v.config.to_dict(), tmp / "model.safetensors", tmp / "config.json")
    return tmp


def test_a_backbone_checkpoint_of_another_shape_stops_naming_the_key(tmp_path):
    (tmp_path / "fm").mkdir()
    with pytest.raises(io.ConfigMismatchError, match="image_size: expected 64, found 28.*in_channels: expected 3, found 1"):
        build_backbone("dino", _vit(tmp_path / "fm", image_size=28, channels=1, patch=7), 0)


@pytest.fixture()
def tiny_project(tmp_path):
    rng = np.random.default_rng(0)
    digits = (rng.random((40, 28, 28)) * 255).astype(np.uint8)
    scenes = compose_scenes(digits, np.arange(40) % 10, 24, np.random.default_rng(1))
    save_scenes(tmp_path / "train.npz", scenes)
    (tmp_path / "dino").mkdir()
    _vit(tmp_path / "dino")
    cfg = clip_model.model_cfg({"embed_dim": 16, "vision": {"tower": "vit", "vit": {"patch_size": 32, "width": 16, "layers": 1, "heads": 2,
                                                                                  "mlp_ratio": 2.0}},
                                "text": {"context_length": 12, "width": 16, "layers": 1, "heads": 2, "mlp_ratio": 2.0}})
    torch.manual_seed(0)
    clip_model.save(clip_model.build(cfg), cfg, tmp_path / "clip")
    return tmp_path, scenes


def _params(**kw):
    p = {"model": {"dim": 16, "heads": 2, "fusion_layers": 1, "decoder_layers": 1, "slots": 3, "mlp_ratio": 2.0, "reference_size": 0.4},
         "n_train": None, "epochs": 1, "batch_size": 8, "queries_per_scene": 2,
         "query_mix": {"digit_colour": 1, "colour": 1, "digit": 1, "position": 1, "absent": 1}, "lr": 1e-3, "weight_decay": 1e-4,
         "warmup_steps": 1, "grad_clip": 1.0, "match_weight": 2.0, "l1_weight": 5.0, "giou_weight": 2.0, "encoder_weight": 1.0,
         "supervised": {"n_train": 16, "epochs": 1, "batch_size": 8, "lr": 1e-3, "weight_decay": 0.0}, "log_every": 1, "seed": 0}
    return {**p, **kw}


@pytest.mark.parametrize("backbone", ["random", "supervised"])
def test_same_seed_same_bytes_and_the_run_loads_back(tiny_project, backbone):
    root, scenes = tiny_project
    outs = []
    for k in range(2):
        out = root / f"run{k}"
        m = gtrain.run(backbone, root / "train.npz", root / "dino", root / "clip", out, _params(), 0, [[0, "red"]])
        outs.append(out)
    for f in ("model.safetensors", "backbone.safetensors", "curves.tsv"):
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
    assert m["steps"] == 3 and m["pairs_seen"] == 24 * 2 and ("supervised" in m) == (backbone == "supervised")
    detector, vit, config = load_run(outs[0])
    assert config["backbone"]["backbone"] == backbone and detector.config.grid == vit.config.grid == 4
    # a backbone of another shape than the detector's config records stops naming the key
    v = ViT(ViTConfig(image_size=64, patch_size=8, in_channels=3, dim=16, depth=1, heads=2, num_classes=0))
    io.save_model(v, {**v.config.to_dict(), "backbone": backbone}, outs[0] / "backbone.safetensors", outs[0] / "backbone.json")
    with pytest.raises(io.ConfigMismatchError, match="patch_size: expected 16, found 8"):
        load_run(outs[0])
    with pytest.raises(ValueError, match="'purple'"):
        figure_picks(scenes, ["a purple 3"])
    assert Query("position", digit=7, side=1).text == "the 7 on the right"


def test_the_batched_giou_equals_torchvisions():
    from torchvision.ops import generalized_box_iou

    from genpipe.grounding.matching import pairwise_giou

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 5, 2, generator=g), torch.rand(2, 3, 2, generator=g)
    boxes_a, boxes_b = torch.cat([a, a + 0.3], -1), torch.cat([b, b + 0.2], -1)
    for i in range(2):
        assert torch.allclose(pairwise_giou(boxes_a, boxes_b)[i], generalized_box_iou(boxes_a[i], boxes_b[i]), atol=1e-6)
