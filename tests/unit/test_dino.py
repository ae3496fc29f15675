"""DINO's method against hand computations: loss, centering, EMA, schedules, multi-crop (issue 15)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from genpipe.dino.crops import CropConfig, multi_crop, random_resized_crop
from genpipe.dino.method import (DINOHead, DINOLoss, StudentTeacher, cosine_schedule, teacher_entropy,
                                 teacher_temperature)
from genpipe.models.vit import ViT, ViTConfig


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_the_loss_equals_a_hand_computation_and_the_centre_moves_after():
    g = torch.Generator().manual_seed(0)
    s = [torch.randn(3, 5, generator=g) for _ in range(3)]  # 2 global crops + 1 local
    t = [torch.randn(3, 5, generator=g) for _ in range(2)]
    loss = DINOLoss(5, student_temp=0.1, center_momentum=0.9)
    loss.center.fill_(0.25)
    got = float(loss(s, t, teacher_temp=0.04))
    total, pairs = 0.0, 0
    for iq in range(2):
        q = _softmax((t[iq].numpy() - 0.25) / 0.04)
        for v in range(3):
            if v != iq:
                p = _softmax(s[v].numpy() / 0.1)
                total += float(np.mean(np.sum(-q * np.log(p), axis=-1)))
                pairs += 1
    assert pairs == 4 and got == pytest.approx(total / pairs, rel=1e-5)
    expected_center = 0.9 * 0.25 + 0.1 * torch.cat(t).mean(0)
    assert torch.allclose(loss.center[0], expected_center, atol=1e-6)


def test_centering_makes_a_constant_teacher_output_uniform():
    out = torch.tensor([[3.0, -1.0, 0.5, 2.0]]).repeat(8, 1)  # the same answer for every image
    loss = DINOLoss(4, center_momentum=0.0)  # the centre becomes the batch mean at once
    loss.update_center([out, out])
    probs = loss.teacher_probs(out, teacher_temp=0.04)
    assert torch.allclose(probs, torch.full_like(probs, 0.25), atol=1e-6)
    entropy, kl = teacher_entropy(probs)
    assert entropy == pytest.approx(math.log(4), abs=1e-5) and kl == pytest.approx(0.0, abs=1e-6)


def test_teacher_entropy_sees_collapse_to_one_prototype():
    one_hot = torch.zeros(6, 10)
    one_hot[:, 3] = 1
    entropy, kl = teacher_entropy(one_hot)
    assert entropy == pytest.approx(0.0, abs=1e-6) and kl == pytest.approx(math.log(10), abs=1e-5)


def test_the_teacher_is_an_ema_of_the_student_and_gets_no_gradient():
    torch.manual_seed(0)
    st = StudentTeacher(nn.Linear(4, 3), nn.Linear(3, 2))
    before = [p.clone() for p in st.teacher.parameters()]
    with torch.no_grad():
        for p in st.student.parameters():
            p.add_(1.0)
    st.update_teacher(momentum=0.75)
    for t0, t, s in zip(before, st.teacher.parameters(), st.student.parameters()):
        assert torch.allclose(t, 0.75 * t0 + 0.25 * s)
        assert not t.requires_grad
    x = [torch.randn(5, 4), torch.randn(5, 4)]
    loss = DINOLoss(2)(st.student_outputs(x), st.teacher_outputs(x), 0.04)
    loss.backward()
    assert all(p.grad is not None for p in st.student.parameters())
    assert all(p.grad is None for p in st.teacher.parameters())


def test_schedules_follow_the_paper():
    assert cosine_schedule(0.996, 1.0, 0, 100) == pytest.approx(0.996)
    assert cosine_schedule(0.996, 1.0, 50, 100) == pytest.approx(0.998)
    assert cosine_schedule(0.996, 1.0, 100, 100) == pytest.approx(1.0)
    assert teacher_temperature(0, 10, 0.04, 0.07) == pytest.approx(0.04)
    assert teacher_temperature(5, 10, 0.04, 0.07) == pytest.approx(0.055)
    assert teacher_temperature(30, 10, 0.04, 0.07) == pytest.approx(0.07)


def test_a_crop_of_the_whole_image_without_flip_is_the_image():
    x = torch.rand(4, 1, 28, 28)
    y = random_resized_crop(x, 28, (1.0, 1.0), (1.0, 1.0), False, torch.Generator().manual_seed(0))
    assert torch.allclose(x, y, atol=1e-5)


def test_multi_crop_shapes_and_seeded():
    x = torch.rand(5, 1, 28, 28)
    cfg = CropConfig(global_size=28, local_size=12, local_crops=3)
    a = multi_crop(x, cfg, torch.Generator().manual_seed(1))
    b = multi_crop(x, cfg, torch.Generator().manual_seed(1))
    assert [tuple(c.shape) for c in a] == [(5, 1, 28, 28)] * 2 + [(5, 1, 12, 12)] * 3
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], a[1])  # two different views
    assert all(0.0 <= float(c.min()) and float(c.max()) <= 1.0 for c in a)
    assert len(multi_crop(x, CropConfig(local_crops=0), torch.Generator())) == 2


@pytest.mark.parametrize("key, value", [("global_scale", (0.4, 1.5)), ("local_scale", (0.0, 0.4)), ("local_scale", (0.5, 0.2))])
def test_crop_scales_outside_0_1_are_refused_by_name(key, value):
    with pytest.raises(ValueError, match=key):
        CropConfig(**{key: value})


def test_a_dino_step_on_a_tiny_vit_runs_on_every_crop_size_and_the_student_learns_the_teacher():
    torch.manual_seed(0)
    backbone = ViT(ViTConfig(image_size=28, patch_size=4, dim=16, depth=1, heads=2, num_classes=0))
    st = StudentTeacher(backbone, DINOHead(16, 32, hidden_dim=32, bottleneck_dim=8))
    loss_fn = DINOLoss(32)
    opt = torch.optim.AdamW(st.student.parameters(), lr=1e-3)
    x = torch.rand(8, 1, 28, 28)
    crops = multi_crop(x, CropConfig(local_crops=2), torch.Generator().manual_seed(0))
    losses = []
    for _ in range(15):
        out = st.student_outputs(crops)
        assert [tuple(o.shape) for o in out] == [(8, 32)] * 4
        loss_fn.center.zero_()  # with the teacher fixed too, the target is fixed
        loss = loss_fn(out, st.teacher_outputs(crops[:2]), 0.04)
        opt.zero_grad()
        loss.backward()
        opt.step()
        st.update_teacher(1.0)  # a fixed teacher: the student alone must move towards it
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


# -- the trainer and the evaluations --

from genpipe.dino.evaluate import jaccard, knn_predict, mass_mask  # noqa: E402
from genpipe.dino.train import DinoTrainer  # noqa: E402

TINY = {"vit": {"patch_size": 7, "dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0},
        "head": {"out_dim": 32, "hidden_dim": 32, "bottleneck_dim": 8, "norm_last_layer": True},
        "local_crops": 2, "local_size": 14, "global_scale": [0.4, 1.0], "local_scale": [0.1, 0.4], "jitter": 0.4,
        "student_temp": 0.1, "teacher_temp": 0.07, "warmup_teacher_temp": 0.04, "teacher_temp_warmup_epochs": 1,
        "center_momentum": 0.9, "momentum": 0.99, "lr": 1e-3, "min_lr": 1e-5, "warmup_epochs": 1, "weight_decay": 0.04,
        "grad_clip": 3.0, "epochs": 4, "batch_size": 16, "seed": 0, "log_every": 2, "checkpoint_every": 3}


def _images(n=48):
    g = torch.Generator().manual_seed(3)
    return torch.rand(n, 1, 28, 28, generator=g)


def test_a_killed_dino_run_resumes_byte_for_byte(tmp_path):
    x = _images()

    class Killed(Exception):
        pass

    def kill_at_7(step):
        if step == 7:
            raise Killed

    a = DinoTrainer(TINY, tmp_path / "a.pt", 28, 1)
    with pytest.raises(Killed):
        a.fit(x, on_step=kill_at_7)  # the checkpoint of step 6 is on disk
    resumed = DinoTrainer(TINY, tmp_path / "a.pt", 28, 1)
    resumed.fit(x)
    straight = DinoTrainer(TINY, tmp_path / "b.pt", 28, 1)
    straight.fit(x)
    sa, sb = resumed.nets.state_dict(), straight.nets.state_dict()
    assert resumed.step == straight.step == 12 and resumed.rows == straight.rows
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and torch.equal(resumed.loss_fn.center, straight.loss_fn.center)
    row = straight.rows[-1]
    assert set(row) >= {"loss", "teacher_entropy", "kl_uniform", "teacher_temp", "momentum", "lr"}
    assert 0 <= row["teacher_entropy"] <= math.log(32) + 1e-6 and row["teacher_temp"] == pytest.approx(0.07)
    assert straight.rows[0]["momentum"] < row["momentum"] <= 1.0  # the cosine to 1


def test_a_nan_loss_stops_dino_naming_the_step(tmp_path):
    x = _images()
    x[:] = float("nan")  # every crop NaN from the first step on
    trainer = DinoTrainer(TINY, tmp_path / "c.pt", 28, 1)
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 0"):
        trainer.fit(x)
    assert not (tmp_path / "c.pt").exists()  # stopped at the first log point, before any checkpoint


def test_weighted_knn_votes_by_similarity():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.2, 1.0]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    test = torch.tensor([[1.0, 0.05], [0.05, 1.0]])
    assert knn_predict(train, labels, test, k=3, num_classes=2).tolist() == [0, 1]
    # k = all five: class 1 has three votes, but class 0's two are far more similar to the first point
    assert knn_predict(train, labels, test[:1], k=5, temperature=0.07, num_classes=2).tolist() == [0]
    with pytest.raises(ValueError, match="k="):
        knn_predict(train, labels, test, k=6)


def test_the_mass_mask_keeps_the_largest_weights_up_to_60_percent():
    attn = torch.tensor([0.5, 0.05, 0.3, 0.1, 0.05])
    # sorted 0.5, 0.3, ...: 0.5 has 0 before it (< 0.6, kept), 0.3 has 0.5 (kept), 0.1 has 0.8 (dropped)
    assert mass_mask(attn, 0.6).tolist() == [True, False, True, False, False]
    assert mass_mask(attn, 1.0).all() and mass_mask(attn, 0.4).tolist() == [True, False, False, False, False]
    with pytest.raises(ValueError, match="mass"):
        mass_mask(attn, 0.0)


def test_jaccard_on_hand_masks():
    a = torch.zeros(4, 4, dtype=torch.bool)
    b = torch.zeros(4, 4, dtype=torch.bool)
    a[:2, :2] = True  # 4 pixels
    b[1:3, 1:3] = True  # 4 pixels, 1 shared
    assert float(jaccard(a, b)) == pytest.approx(1 / 7)
    assert float(jaccard(a, a)) == 1.0 and float(jaccard(b & ~b, b & ~b)) == 1.0


# -- the stages' pieces: params per run, the linear probe, attention vs masks, the backbone file --

from genpipe.dino.evaluate import attention_jaccard, linear_probe, upsample_masks  # noqa: E402
from genpipe.dino.train import run_params  # noqa: E402


def test_a_run_merges_its_keys_over_the_shared_ones_and_unknown_runs_are_named():
    dino = {**{k: v for k, v in TINY.items() if k not in ("epochs", "local_size")}, "vit": {"dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0},
            "runs": {"scenes": {"patch_size": 16, "local_size": 32, "epochs": 2, "limit": 10}}}
    p = run_params(dino, "scenes")
    assert p["vit"] == {"dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0, "patch_size": 16}
    assert (p["local_size"], p["epochs"], p["limit"], p["local_crops"]) == (32, 2, 10, 2) and "runs" not in p
    with pytest.raises(KeyError, match="dino.runs has no run 'mnist'"):
        run_params(dino, "mnist")
    del dino["runs"]["scenes"]["limit"]
    with pytest.raises(KeyError, match=r"dino.runs.scenes lacks \['limit'\]"):
        run_params(dino, "scenes")


def test_the_linear_probe_separates_separable_classes():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]])
    y = torch.arange(300) % 3
    x = centres[y] + torch.randn(300, 3, generator=g) * 0.5
    pred = linear_probe(x[:240], y[:240], x[240:], num_classes=3, epochs=20, batch_size=32, lr=0.05)
    assert (pred == y[240:]).float().mean() == 1.0


def test_attention_jaccard_on_a_hand_made_map():
    # a 2 x 2 patch grid over a 4 x 4 scene; object 1 fills the top-left patch, object 2 the bottom-right one
    objects = torch.zeros(1, 4, 4, dtype=torch.long)
    objects[0, :2, :2] = 1
    objects[0, 2:, 2:] = 2
    attention = torch.tensor([[[[0.7, 0.1], [0.1, 0.1]],    # head 0: 60 % of its mass is the top-left patch alone
                               [[0.1, 0.1], [0.1, 0.7]]]])  # head 1: the bottom-right one
    s = attention_jaccard(attention, objects, keep=0.6)
    assert s["foreground"].tolist() == [[0.5, 0.5]]  # 4 of the 8 foreground pixels, nothing else
    assert s["per_object"].tolist() == [[[1.0, 0.0], [0.0, 1.0]]]  # each head finds one object exactly
    assert upsample_masks(torch.tensor([[True, False], [False, False]]), 4).sum() == 4
    one = attention_jaccard(attention, torch.where(objects == 2, 0, objects), keep=0.6)["per_object"]
    assert one.shape == (1, 2, 1)  # scenes with one object: one column


def test_a_backbone_of_another_shape_is_refused_naming_the_key(tmp_path):
    from genpipe.dino.stages import load_backbone
    from genpipe.pipeline import io

    net = ViT(ViTConfig(image_size=28, in_channels=1, num_classes=0, patch_size=7, dim=16, depth=1, heads=2))
    io.save_model(net, net.config.to_dict(), tmp_path / "model.safetensors", tmp_path / "config.json")
    loaded, config = load_backbone(tmp_path)
    assert torch.equal(loaded.pos_embed, net.pos_embed) and config["dim"] == 16
    with pytest.raises(io.ConfigMismatchError, match="dim: expected 64, found 16"):
        load_backbone(tmp_path, expected={"dim": 64})


def test_the_prototype_gains_are_fixed_at_one_or_learnt():
    x = torch.randn(4, 16)
    fixed, learnt = DINOHead(16, 8, 32, 8, norm_last_layer=True), DINOHead(16, 8, 32, 8, norm_last_layer=False)
    assert not fixed.gain.requires_grad and learnt.gain.requires_grad
    assert fixed(x).abs().max() <= 1.0 + 1e-6  # cosine logits
    learnt.load_state_dict(fixed.state_dict())
    with torch.no_grad():
        learnt.gain.fill_(3.0)
    assert torch.allclose(learnt(x), 3.0 * fixed(x))
