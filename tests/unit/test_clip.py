"""CLIP stages (genpipe.clip) with tiny configs: hard negatives, the open_clip round trip, config checks,
NegCLIP's loss, a few training steps and the benchmark on a pretrained-style open_clip checkpoint."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.loss import ClipLoss
from safetensors.torch import save_file

from genpipe.clip import compare, evaluate, model as clip_model, train
from genpipe.pipeline import io
from genpipe.scenes import captions, compose
from genpipe.scenes.dataset import save_scenes

TINY = {"embed_dim": 16, "vision": {"tower": "vit", "vit": {"patch_size": 16, "width": 32, "layers": 1, "heads": 2, "mlp_ratio": 2.0},
                                    "resnet": {"layers": [1, 1, 1, 1], "width": 4, "head_width": 8}},
        "text": {"context_length": 16, "width": 32, "layers": 1, "heads": 2, "mlp_ratio": 2.0}}
TRAIN = {"model": TINY, "batch_size": 16, "epochs": 2, "lr": 1e-3, "weight_decay": 0.1, "warmup_steps": 2, "seed": 0,
         "precision": "fp32", "n_train": None, "n_val": 16, "variants": {"plain": {"hard_negatives": False}, "hardneg": {"hard_negatives": True}}}
EVAL = {"n_retrieval": 40, "similarity_k": 6, "batch_size": 64, "pretrained": None}


def _scenes(n: int, seed: int, held_out=()):
    rng = np.random.default_rng(seed)
    digits = (rng.random((200, 28, 28)) > 0.6).astype(np.uint8) * 255  # random "ink": stands in for MNIST
    labels = np.arange(200) % 10
    return compose.compose_scenes(digits, labels, n, rng, held_out=held_out)


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    for split, n, seed in (("train", 48, 0), ("val", 16, 1), ("test", 60, 2)):
        save_scenes(root / f"{split}.npz", _scenes(n, seed))
    return root


def test_hard_negatives_differ_from_the_caption():
    s = _scenes(60, 3)
    objects = [s.objects(i) for i in range(len(s))]
    texts, negs = train.epoch_texts(s, objects, captions.DEFAULT_TEMPLATES, np.random.default_rng(0), hard_negatives=True)
    tok = train.TokenCache(16)
    with_neg = [i for i, n in enumerate(negs) if n is not None]
    assert with_neg, "some scenes must get a hard negative"
    for i in with_neg:
        assert negs[i] != texts[i]
        assert not torch.equal(tok([negs[i]]), tok([texts[i]]))  # differs as tokens too
    assert all(negs[i] is None for i in range(len(s)) if len(objects[i]) == 1)
    for i in range(len(s)):  # the benchmark's negatives: a real change of meaning, or skipped
        if len(objects[i]) == 2:
            neg = evaluate.colour_swap(objects[i], "{o1} and {o2}")
            a, b = objects[i]
            if a.colour != b.colour and a.digit != b.digit:  # else "a red 3 and a blue 3" swapped means the same
                assert neg is not None and neg != captions.render("{o1} and {o2}", objects[i])
            else:
                assert neg is None


def test_relation_reversed_swaps_the_roles():
    a = compose.SceneObject(3, 0, 0, (2, 2, 20, 20))  # red 3, top-left
    b = compose.SceneObject(7, 2, 1, (40, 2, 60, 20))  # blue 7, top-right
    t = "{left} to the left of {right}"
    assert captions.render(t, [a, b]) == "a red 3 to the left of a blue 7"
    assert evaluate.relation_reversed([a, b], t) == "a blue 7 to the left of a red 3"


def test_negclip_loss_without_negatives_is_clip_loss():
    torch.manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    scale = torch.tensor(10.0)
    assert torch.allclose(train.negclip_loss(img, txt, txt[:0], scale), ClipLoss()(img, txt, scale))
    assert train.negclip_loss(img, txt, txt[:3] + 0.1, scale) > train.negclip_loss(img, txt, txt[:0], scale)


def test_tokenize_stops_on_a_caption_that_does_not_fit():
    assert clip_model.tokenize(["a red 3"], 16).shape == (1, 16)
    with pytest.raises(ValueError, match="a red 3, a green 4 and a blue 5.*context_length=8"):
        clip_model.tokenize(["a red 3, a green 4 and a blue 5"], 8)


def tiny(tower: str) -> dict:
    return {**TINY, "vision": {**TINY["vision"], "tower": tower}}


@pytest.mark.parametrize("tower", ["vit", "resnet"])
def test_open_clip_round_trip(tmp_path, tower):
    torch.manual_seed(0)
    cfg = clip_model.model_cfg(tiny(tower))
    assert ("patch_size" in cfg["vision_cfg"]) == (tower == "vit") and isinstance(cfg["vision_cfg"]["layers"], list) == (tower == "resnet")
    ours = clip_model.build(cfg).eval()
    clip_model.save(ours, cfg, tmp_path / "a")
    clip_model.save(ours, cfg, tmp_path / "b")
    assert io.sha256_file(tmp_path / "a" / "model.safetensors") == io.sha256_file(tmp_path / "b" / "model.safetensors")
    theirs = open_clip.create_model(f"local-dir:{tmp_path / 'a'}").eval()  # open_clip's own loader
    tokenizer = open_clip.get_tokenizer(f"local-dir:{tmp_path / 'a'}")
    assert tokenizer.context_length == 16
    x = clip_model.preprocess(torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8))
    t = tokenizer(["a red 3", "a blue 7 and a green 1", "a cyan 2 above a white 5"])
    assert torch.equal(t, clip_model.tokenize(["a red 3", "a blue 7 and a green 1", "a cyan 2 above a white 5"], 16))
    with torch.no_grad():
        assert torch.equal(ours.encode_image(x), theirs.encode_image(x))
        assert torch.equal(ours.encode_text(t), theirs.encode_text(t))
    loaded, cfg2 = clip_model.load(tmp_path / "a")
    assert cfg2 == cfg
    with torch.no_grad():
        assert torch.equal(loaded.encode_text(t), ours.encode_text(t))
        assert torch.equal(loaded.encode_image(x), ours.encode_image(x))
    assert type(theirs.visual).__name__ == {"vit": "VisionTransformer", "resnet": "ModifiedResNet"}[tower]


def test_unknown_image_tower_is_named():
    with pytest.raises(ValueError, match="train_clip.model.vision.tower: 'cnn'"):
        clip_model.model_cfg(tiny("cnn"))


def test_mismatched_checkpoint_config_stops_naming_it(tmp_path):
    cfg = clip_model.model_cfg(TINY)
    clip_model.save(clip_model.build(cfg), cfg, tmp_path)
    with pytest.raises(io.ConfigMismatchError, match=r"open_clip_config.json: vision_cfg.width: expected 64, found 32"):
        clip_model.load(tmp_path, expected={**cfg, "vision_cfg": {**cfg["vision_cfg"], "width": 64}})
    full = io.read_json(tmp_path / "open_clip_config.json")
    full["model_cfg"]["text_cfg"]["width"] = 64
    io.write_json(tmp_path / "open_clip_config.json", full)  # edited beside the weights
    with pytest.raises(io.ConfigMismatchError, match="open_clip_config.json does not match the config stored in .*model.safetensors"):
        clip_model.load(tmp_path)
    state = clip_model.build(cfg).state_dict()
    save_file(state, str(tmp_path / "model.safetensors"))  # weights without an embedded config
    with pytest.raises(io.ConfigMismatchError, match=r"model.safetensors does not match .*open_clip_config.json: .*the config builds"):
        clip_model.load(tmp_path)


def test_training_steps_are_deterministic_and_finite(scenes_dir, tmp_path):
    from genpipe.scenes.dataset import load_scenes

    tr, va = load_scenes(scenes_dir / "train.npz"), load_scenes(scenes_dir / "val.npz")
    outs = []
    for _ in range(2):
        m, cfg, rows, summary = train.train(tr, va, TRAIN, True, captions.DEFAULT_TEMPLATES, progress=False)
        outs.append(m.state_dict())
    assert summary["steps"] == 2 * (48 // 16) and summary["hard_negatives_per_batch"] > 0
    assert [r["step"] for r in rows] == [3, 6] and all(np.isfinite(r["val_loss"]) for r in rows)
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])


def test_stages_end_to_end_with_a_pretrained_open_clip_checkpoint(scenes_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    held = compose.held_out_pairs([[0, "red"], [1, "green"]])
    for v in ("plain", "hardneg"):
        train.train_stage(v, scenes_dir, tmp_path / "train" / v, TRAIN, captions.DEFAULT_TEMPLATES)
        mdl, cfg = clip_model.load(tmp_path / "train" / v)
        m = evaluate.evaluate_stage(evaluate.Scorer(mdl), v, scenes_dir, tmp_path / "eval" / v, EVAL, captions.DEFAULT_TEMPLATES, held, {})
        assert {"similarity.png", "retrieval.png", "metrics.json"} <= {p.name for p in (tmp_path / "eval" / v).iterdir()}
        for sub in ("all", "held_out"):
            for k in ("i2t_r1", "t2i_r5", "digit_accuracy", "colour_accuracy", "binding_colour", "binding_relation"):
                assert f"{k}_n" in m[sub] and (m[sub][k] is None or 0 <= m[sub][k] <= 1)
        assert m["all"]["i2t_r1_n"] == 40
    # null: the stage still writes its output, saying so; compare_clip then shows the two variants
    assert evaluate.pretrained_stage(None, scenes_dir, tmp_path / "none", EVAL, captions.DEFAULT_TEMPLATES, held)["configured"] is False
    c = compare.compare_stage(tmp_path / "train", tmp_path / "eval", tmp_path / "none", tmp_path / "cmp")
    table = (tmp_path / "cmp" / "table.tsv").read_text().splitlines()
    assert len(table) == 1 + 4 and table[1].startswith("plain\tall")
    assert c["pretrained"] is None and (tmp_path / "cmp" / "binding.png").stat().st_size > 0
    p, h = c["plain"]["binding_colour"], c["hardneg"]["binding_colour"]
    assert f"from {100 * p:.1f} % to {100 * h:.1f} %" in c["observation"]  # the observation quotes the numbers
    # A tiny randomly initialised open_clip model at another input size (32 px), saved as open_clip saves
    # for the hub (open_clip_config.json with model_cfg/preprocess_cfg + open_clip_model.safetensors) ...
    cfg32 = clip_model.model_cfg(TINY)
    cfg32["vision_cfg"]["image_size"] = 32
    cfg32["text_cfg"]["context_length"] = 20
    tiny = open_clip.CLIP(**cfg32)
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg32, "preprocess_cfg": {"mean": OPENAI_DATASET_MEAN, "std": OPENAI_DATASET_STD}}))
    save_file(tiny.state_dict(), str(hub / "open_clip_model.safetensors"))
    m = evaluate.pretrained_stage({"model_name": f"local-dir:{hub}", "path": None}, scenes_dir, tmp_path / "pre", EVAL,
                                  captions.DEFAULT_TEMPLATES, held)
    assert m["configured"] and m["input_size"] == 32 and m["all"]["digit_accuracy_n"] > 0
    # ... and as its training loop saves epochs (torch.save({"epoch", "name", "state_dict", ...})) with a registered config.
    (tmp_path / "tiny-clip-32.json").write_text(json.dumps(cfg32))
    open_clip.add_model_config(tmp_path / "tiny-clip-32.json")
    torch.save({"epoch": 1, "name": "tiny", "state_dict": {f"module.{k}": v for k, v in tiny.state_dict().items()}}, tmp_path / "epoch_1.pt")
    m2 = evaluate.pretrained_stage({"model_name": "tiny-clip-32", "path": str(tmp_path / "epoch_1.pt")}, scenes_dir, tmp_path / "pre2",
                                   EVAL, captions.DEFAULT_TEMPLATES, held)
    assert m2["all"] == m["all"]  # same weights and preprocessing (open_clip's default mean/std), same scores
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        evaluate.pretrained_stage({"model_name": "tiny-clip-32", "path": "missing.pt"}, scenes_dir, tmp_path / "pre3", EVAL,
                                  captions.DEFAULT_TEMPLATES, held)
