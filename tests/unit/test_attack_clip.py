"""CLIP's zero-shot attack and its defenses (genpipe.robustness.clip_*, lora) with tiny open_clip models."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from torch import nn

from genpipe.clip import evaluate, model as clip_model, train
from genpipe.pipeline import io
from genpipe.robustness import clip_stages, lora
from genpipe.robustness.classifiers import AttackError
from genpipe.robustness.clip_zero_shot import PadPrompt, PromptedCLIP, ZeroShot, adversarial_finetune, digit_classes, pixels
from genpipe.robustness.report import clip_robustness_tables
from genpipe.scenes import captions, compose
from genpipe.scenes.dataset import save_scenes

from test_clip import EVAL, TRAIN, _scenes, tiny

DEFEND = {"defenses": ["tecoa", "prompt", "lora"], "eps": 0.05, "pgd": {"steps": 2, "alpha_ratio": 2.5}, "n_train": None, "epochs": 1,
          "batch_size": 8, "warmup_steps": 1, "precision": "fp32", "log_every": 2, "seed": 0,
          "tecoa": {"lr": 1e-4, "weight_decay": 0.0}, "prompt": {"width": 4, "lr": 0.01}, "lora": {"rank": 2, "alpha": 4, "lr": 1e-3}}
ATTACK = {"eps": [0.0, 0.05, 0.2], "transfer_eps": 0.05, "fgsm": {"n": None}, "pgd": {"steps": 2, "alpha_ratio": 2.5, "random_start": True, "n": 10},
          "batch_size": 10, "examples_per_model": 1, "seed": 0}
ATTACK_CLIP = {"n_fgsm": None, "n_pgd": 12, "batch_size": 16, "examples": 2}
HELD = compose.held_out_pairs([[0, "red"], [1, "green"]])


def _clip(tower: str, seed: int = 0):
    torch.manual_seed(seed)
    cfg = clip_model.model_cfg(tiny(tower))
    return clip_model.build(cfg).eval(), cfg


@pytest.mark.parametrize("tower", ["resnet", "vit"])
def test_lora_at_initialisation_leaves_the_outputs_unchanged_and_trains_only_its_matrices(tower):
    clip, _ = _clip(tower)
    x = torch.rand(3, 3, 64, 64)
    before = clip.visual(x).detach()
    names_before = {n for n, p in clip.visual.named_parameters()}
    params = lora.apply(clip.visual, rank=2, alpha=4)
    assert torch.equal(clip.visual(x), before)  # B = 0
    owners = lora.attention_weights(clip.visual)
    assert len(params) == 2 * len(owners) > 0
    trainable = [n for n, p in clip.visual.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith((".A", ".B")) and "parametrizations" in n for n in trainable)
    assert len(trainable) == len(params) and not any(p.requires_grad for n, p in clip.visual.named_parameters() if n in names_before)
    # a step moves the output through the matrices alone; merging keeps it and gives back the plain architecture
    loss = clip.visual(x).pow(2).sum()
    loss.backward()
    torch.optim.SGD(params, lr=0.1).step()
    after = clip.visual(x).detach()
    assert not torch.allclose(after, before)
    lora.merge(clip.visual)
    assert not any("parametrizations" in k for k in clip.state_dict())
    assert set(clip.state_dict()) == set(_clip(tower)[0].state_dict())
    torch.testing.assert_close(clip.visual(x), after, rtol=1e-5, atol=1e-5)


def test_lora_names_a_model_without_attention():
    with pytest.raises(ValueError, match="no attention projection found in Sequential"):
        lora.apply(nn.Sequential(nn.Conv2d(3, 4, 3)), 2, 4)
    with pytest.raises(ValueError, match="LoRA rank must be >= 1"):
        lora.LoRA(4, 4, 0, 1.0)


def test_a_visual_prompt_of_zeros_is_the_identity_and_lives_on_the_border():
    prompt = PadPrompt(64, 4)
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(prompt(x), x)
    assert prompt.n_trainable() == 3 * (64 * 64 - 56 * 56)
    prompt.delta.data.fill_(0.5)
    d = prompt(x) - x
    assert torch.all(d[..., 4:-4, 4:-4] == 0) and torch.allclose(d[..., :4, :], torch.full_like(d[..., :4, :], 0.5))
    with pytest.raises(ValueError, match="defend_clip.prompt.width: 32 px"):
        PadPrompt(64, 32)


def test_zero_shot_module_is_evaluate_clips_classifier():
    clip, cfg = _clip("resnet")
    scenes = _scenes(40, 3)
    classes = digit_classes(clip, 16, captions.DEFAULT_TEMPLATES)
    scorer = evaluate.Scorer(clip)
    want = (scorer.images(scenes.images) @ classes.T).argmax(1)
    zs = ZeroShot(clip.visual, classes, clip.logit_scale.exp().item(), channels_last=False)
    with torch.no_grad():
        got = zs(pixels(scenes.images)).argmax(1)
    assert torch.equal(got, want)
    # with a prompt, the module and the benchmark's PromptedCLIP see the same prompted image
    prompt = PadPrompt(64, 4)
    prompt.delta.data.normal_(0, 0.3)
    zs_p = ZeroShot(clip.visual, classes, clip.logit_scale.exp().item(), prompt, channels_last=False)
    with torch.no_grad():
        got_p = zs_p(pixels(scenes.images)).argmax(1)
    want_p = (evaluate.Scorer(PromptedCLIP(clip, prompt)).images(scenes.images) @ classes.T).argmax(1)
    assert torch.equal(got_p, want_p)


@pytest.fixture(scope="module")
def stage_dirs(tmp_path_factory):
    """Tiny scenes, a tiny trained plain CLIP and its evaluate_clip metrics."""
    root = tmp_path_factory.mktemp("clip_attack")
    scenes = root / "scenes"
    for split, n, seed in (("train", 120, 0), ("val", 16, 1), ("test", 90, 2)):
        save_scenes(scenes / f"{split}.npz", _scenes(n, seed, held_out=HELD if split != "test" else ()))
    p = {**TRAIN, "model": tiny("resnet"), "epochs": 1}
    train.train_stage("plain", scenes, root / "clip", p, captions.DEFAULT_TEMPLATES)
    mdl, _ = clip_model.load(root / "clip")
    evaluate.evaluate_stage(evaluate.Scorer(mdl), "plain", scenes, root / "eval", EVAL, captions.DEFAULT_TEMPLATES, HELD, {}, figures=False)
    return root


@pytest.fixture(scope="module")
def defended(stage_dirs):
    """defend_clip's outputs on the tiny plain CLIP."""
    clip_stages.defend_stage(stage_dirs / "clip", stage_dirs / "scenes", stage_dirs / "defend", DEFEND, captions.DEFAULT_TEMPLATES, progress=False)
    return stage_dirs / "defend"


def test_defenses_train_only_what_they_name_and_are_deterministic(stage_dirs, defended, tmp_path):
    clip_stages.defend_stage(stage_dirs / "clip", stage_dirs / "scenes", tmp_path / "b", DEFEND, captions.DEFAULT_TEMPLATES, progress=False)
    for f in ("tecoa/model.safetensors", "lora/model.safetensors", "lora/lora.safetensors", "prompt/prompt.safetensors", "curves.tsv"):
        assert io.sha256_file(defended / f) == io.sha256_file(tmp_path / "b" / f), f
    m1 = io.read_json(defended / "metrics.json")
    plain, cfg = clip_model.load(stage_dirs / "clip")
    tecoa, _ = clip_model.load(defended / "tecoa", expected=cfg)
    merged, _ = clip_model.load(defended / "lora", expected=cfg)
    ps, ts, ls = plain.state_dict(), tecoa.state_dict(), merged.state_dict()
    assert all(torch.equal(ps[k], ts[k]) for k in ps if not k.startswith("visual."))  # the text tower is frozen
    assert clip_stages.same_text_tower(plain, tecoa) and clip_stages.same_text_tower(plain, merged)
    assert not clip_stages.same_text_tower(plain, _clip("resnet", seed=1)[0])
    assert any(not torch.equal(ps[k], ts[k]) for k in ps if k.startswith("visual.") and ps[k].is_floating_point())
    changed = {k for k in ps if not torch.equal(ps[k], ls[k])}
    assert changed and all(".attnpool." in k and k.endswith("_proj.weight") for k in changed)  # LoRA moved only the projections
    loaded = open_clip.create_model(f"local-dir:{defended / 'lora'}")  # open_clip loads a defended run itself
    assert all(torch.equal(loaded.state_dict()[k], ls[k]) for k in ls)
    d = m1["defenses"]
    n_vis = sum(p.numel() for p in plain.visual.parameters())
    assert d["tecoa"]["trainable_parameters"] == n_vis and d["prompt"]["trainable_parameters"] == 3 * (64 * 64 - 56 * 56)
    assert d["lora"]["trainable_parameters"] == sum(2 * (w.shape[0] + w.shape[1]) for w in (ps[f"visual.attnpool.{p}_proj.weight"] for p in "qkvc"))
    from genpipe.scenes.dataset import load_scenes

    assert m1["n_train"] == int((load_scenes(stage_dirs / "scenes" / "train.npz").n_objects == 1).sum()) > 8
    assert all(s["steps"] == m1["n_train"] // 8 and s["images"] == 8 * s["steps"] for s in d.values())  # the same budget each


def test_attack_stage_scores_every_model_the_same_way(stage_dirs, defended, tmp_path):
    metrics, rows, fig = clip_stages.attack_stage(stage_dirs / "clip", defended, stage_dirs / "eval" / "metrics.json",
                                                  stage_dirs / "scenes", ATTACK, ATTACK_CLIP, DEFEND, EVAL, captions.DEFAULT_TEMPLATES, HELD)
    own = io.read_json(stage_dirs / "eval" / "metrics.json")["all"]["digit_accuracy"]
    assert metrics["clean_check"]["equal"] and metrics["models"]["plain"]["fgsm"]["accuracy"]["0.0"] == pytest.approx(own, abs=5e-5)
    assert list(metrics["models"]) == ["plain", "tecoa", "prompt", "lora"]
    for name, m in metrics["models"].items():
        for a in ("fgsm", "pgd"):
            curve = list(m[a]["accuracy"].values())
            assert all(b <= a_ for a_, b in zip(curve, curve[1:])), (name, a, curve)  # a budget curve never rises
        assert m["pgd"]["n"] == 12 and m["clean_n"] == m["fgsm"]["n"]
        assert {"digit_accuracy", "colour_accuracy", "binding_colour", "binding_relation", "t2i_r1"} <= set(m["zero_shot"]["all"])
    assert [r["eps"] for r in rows] == ATTACK["eps"] and "tecoa_pgd" in rows[0]
    obs = metrics["observation"]
    assert set(obs["ratio_to_plain"]) == {"tecoa", "prompt", "lora"} and obs["eps"] == 0.05
    assert obs["clean_cost"]["tecoa"] == pytest.approx(metrics["models"]["plain"]["clean_accuracy"] - metrics["models"]["tecoa"]["clean_accuracy"], abs=1e-6)
    io.write_json(tmp_path / "attack_clip" / "metrics.json", metrics)
    (tmp_path / "defend_clip").symlink_to(defended)
    text = clip_robustness_tables(tmp_path)
    assert "TeCoA" in text and "| 0.05 |" in text and "trainable" in text


def test_bad_input_is_named(stage_dirs, tmp_path):
    with pytest.raises(AttackError, match=r"defend_clip.eps: 0.1 is not in attack.eps \[0.0, 0.05, 0.2\]"):
        clip_stages.attack_stage(stage_dirs / "clip", tmp_path, stage_dirs / "eval" / "metrics.json", stage_dirs / "scenes", ATTACK,
                                 ATTACK_CLIP, {**DEFEND, "eps": 0.1}, EVAL, captions.DEFAULT_TEMPLATES, HELD)
    with pytest.raises(AttackError, match="unknown model 'jpeg'"):
        clip_stages.load_models(stage_dirs / "clip", tmp_path, ["jpeg"])
    with pytest.raises(ValueError, match=r"eps = 1.5 is outside \[0, 1\]"):
        clip_stages.defend_stage(stage_dirs / "clip", stage_dirs / "scenes", tmp_path, {**DEFEND, "eps": 1.5}, captions.DEFAULT_TEMPLATES)
    # a defended tower of another shape than the plain run's
    other = {**tiny("resnet"), "vision": {**tiny("resnet")["vision"], "resnet": {"layers": [1, 1, 1, 1], "width": 8, "head_width": 8}}}
    cfg = clip_model.model_cfg(other)
    clip_model.save(clip_model.build(cfg), cfg, tmp_path / "tecoa")
    with pytest.raises(io.ConfigMismatchError, match="vision_cfg.width: expected 4, found 8"):
        clip_stages.load_models(stage_dirs / "clip", tmp_path, ["tecoa"])
