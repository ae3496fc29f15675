"""The course's Vision Transformer (models/vit.py) and the train_vit stage's pieces, on tiny configs."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genpipe.classify.vit_stage import augment, lr_lambda
from genpipe.models.vit import Attention, ViT, ViTConfig, count_parameters
from genpipe.pipeline.params import ParamsError, load_schema, validate

TINY = ViTConfig(image_size=8, patch_size=4, in_channels=1, dim=8, depth=2, heads=2, mlp_ratio=2.0, num_classes=3)


def test_shapes_and_features():
    net = ViT(TINY)
    x = torch.randn(5, 1, 8, 8)
    assert net(x).shape == (5, 3)
    f = net.forward_features(x, return_attention=True)
    assert f.cls_token.shape == (5, 8) and f.patch_tokens.shape == (5, 4, 8)
    assert f.attention.shape == (5, 2, 5, 5)  # (B, heads, 1 + N, 1 + N)
    assert torch.allclose(f.attention.sum(-1), torch.ones(5, 2, 5))  # each row a distribution
    assert net.forward_features(x).attention is None
    assert torch.allclose(net.head(f.cls_token), net(x), atol=1e-6)  # the head reads the class token
    backbone = ViT(ViTConfig(**{**TINY.to_dict(), "num_classes": 0}))
    assert backbone(x).shape == (5, 8)


def test_parameter_count_of_the_default():
    # patch conv 1*16*64+64, cls 64, pos 50*64; per block 2 LN (256) + qkv 64*192+192 + proj 64*64+64 + MLP 64*128+128+128*64+64;
    # final LN 128, head 64*10+10
    block = 256 + (64 * 192 + 192) + (64 * 64 + 64) + (64 * 128 + 128) + (128 * 64 + 64)
    expected = (16 * 64 + 64) + 64 + 50 * 64 + 6 * block + 128 + (64 * 10 + 10)
    assert count_parameters(ViT(ViTConfig(dim=64, depth=6, heads=4, mlp_ratio=2.0, patch_size=4))) == expected


def _explicit_attention(attn: Attention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ / √d) v per head, written out with loops over heads."""
    b, n, c = x.shape
    h = attn.heads
    d = c // h
    q, k, v = attn.qkv(x).split(c, dim=-1)
    outs, weights = [], []
    for i in range(h):
        qi, ki, vi = (t[..., i * d : (i + 1) * d] for t in (q, k, v))
        w = torch.softmax(qi @ ki.transpose(1, 2) / math.sqrt(d), dim=-1)
        weights.append(w)
        outs.append(w @ vi)
    return attn.proj(torch.cat(outs, dim=-1)), torch.stack(weights, dim=1)


def test_attention_equals_reference_computations():
    torch.manual_seed(0)
    attn = Attention(8, heads=2).eval()
    x = torch.randn(3, 5, 8)
    ours_w, weights = attn(x, return_weights=True)
    ours_fused, none = attn(x)
    ref, ref_w = _explicit_attention(attn, x)
    assert none is None
    torch.testing.assert_close(ours_w, ref)
    torch.testing.assert_close(ours_fused, ref, rtol=1e-5, atol=1e-6)  # SDPA path = explicit path
    torch.testing.assert_close(weights, ref_w)

    mha = nn.MultiheadAttention(8, 2, batch_first=True)  # PyTorch's, with our weights copied in
    with torch.no_grad():
        mha.in_proj_weight.copy_(attn.qkv.weight)
        mha.in_proj_bias.copy_(attn.qkv.bias)
        mha.out_proj.weight.copy_(attn.proj.weight)
        mha.out_proj.bias.copy_(attn.proj.bias)
    mha_out, mha_w = mha(x, x, x, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(ours_w, mha_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(weights, mha_w, rtol=1e-5, atol=1e-6)


def test_last_block_attention_is_the_last_blocks():
    torch.manual_seed(0)
    net = ViT(TINY).eval()
    x = torch.randn(2, 1, 8, 8)
    f = net.forward_features(x, return_attention=True)
    t = net.tokens(x)
    for block in net.blocks[:-1]:
        t, _ = block(t)
    _, expected = net.blocks[-1].attn(net.blocks[-1].norm1(t), return_weights=True)
    torch.testing.assert_close(f.attention, expected)
    torch.testing.assert_close(net.forward_features(x).cls_token, f.cls_token, rtol=1e-5, atol=1e-6)


def test_position_embedding_interpolates_for_other_sizes():
    net = ViT(ViTConfig(image_size=16, patch_size=4, dim=8, depth=1, heads=2, num_classes=0))
    assert net.position_embedding(4, 4) is net.pos_embed
    small = net.position_embedding(2, 2)
    assert small.shape == (1, 5, 8)
    torch.testing.assert_close(small[:, 0], net.pos_embed[:, 0])  # the class token's position is kept
    f = net.forward_features(torch.randn(3, 1, 8, 8), return_attention=True)  # a local crop: 2 x 2 patches
    assert f.patch_tokens.shape == (3, 4, 8) and f.attention.shape == (3, 2, 5, 5)
    with pytest.raises(ValueError, match="patch_size=4"):
        net(torch.randn(1, 1, 10, 10))


@pytest.mark.parametrize("override, key", [
    ({"patch_size": 3}, "patch_size"),
    ({"heads": 3}, "heads"),
    ({"dim": 0}, "dim"),
    ({"depth": 1.5}, "depth"),
    ({"mlp_ratio": 0}, "mlp_ratio"),
    ({"dropout": 1.0}, "dropout"),
    ({"num_classes": -1}, "num_classes"),
])
def test_bad_config_names_the_key(override, key):
    with pytest.raises(ValueError, match=f"ViTConfig.{key}"):
        ViTConfig(**{**TINY.to_dict(), **override})


def test_params_schema_names_bad_train_vit_keys(tmp_path):
    import yaml
    from genpipe.pipeline.params import schema_path
    doc = yaml.safe_load(open("params.yaml"))
    schema = load_schema(schema_path("params.yaml"))
    validate(doc, schema, "train_vit")
    for change, key in (({"heads": 3}, "train_vit.dim"), ({"patch_size": 5}, "train_vit.patch_size"), ({"flip": 1}, "train_vit.flip")):
        bad = {**doc, "train_vit": {**doc["train_vit"], **change}}
        with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
            validate(bad, schema, "train_vit")


def test_augment_is_a_seeded_crop_and_flip():
    x = torch.arange(2 * 16, dtype=torch.float32).view(2, 1, 4, 4)
    assert torch.equal(augment(x, 0, False, -1.0, torch.Generator().manual_seed(0)), x)
    a = augment(x, 1, True, -1.0, torch.Generator().manual_seed(3))
    b = augment(x, 1, True, -1.0, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)
    for i in range(2):  # every output is a 4 x 4 window of the padded image, mirrored or not
        windows = [padded[i, 0, r : r + 4, c : c + 4] for r in range(3) for c in range(3)]
        assert any(torch.equal(a[i, 0], w) or torch.equal(a[i, 0], w.flip(-1)) for w in windows)


def test_lr_schedule_warms_up_then_decays_to_zero():
    f = lr_lambda(warmup=4, total=20)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == pytest.approx(1.0) and f(12) == pytest.approx(0.5) and f(20) == pytest.approx(0.0)
    assert all(f(s) >= f(s + 1) for s in range(4, 20))


def test_training_is_deterministic_and_learns_a_separable_toy_task():
    from genpipe.classify.vit_stage import train_vit
    from genpipe.pipeline.determinism import set_determinism

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (96,), generator=g)
    x = torch.randn(96, 1, 8, 8, generator=g) * 0.3
    x[:, :, :4] += (2 * y - 1).float()[:, None, None, None]  # the class is the sign of the top half
    p = {"epochs": 4, "batch_size": 16, "lr": 0.01, "weight_decay": 0.05, "warmup_steps": 2, "label_smoothing": 0.1,
         "grad_clip": 1.0, "crop_padding": 1, "flip": True, "seed": 0}
    states, rows = [], []
    for _ in range(2):
        set_determinism(0)
        net = ViT(ViTConfig(image_size=8, patch_size=4, dim=8, depth=1, heads=2, num_classes=2))
        rows.append(train_vit(net, p, (x, y), (x[:32], y[:32]), 2, fill=0.0, dev=torch.device("cpu")))
        states.append(net.state_dict())
    assert rows[0] == rows[1] and all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert [r["epoch"] for r in rows[0]] == [1, 2, 3, 4] and rows[0][-1]["val_accuracy"] > 0.9


def test_resuming_from_the_epoch_checkpoint_gives_the_same_result(tmp_path, monkeypatch):
    import genpipe.classify.vit_stage as vs
    from genpipe.pipeline.checkpoint import load_state, save_state
    from genpipe.pipeline.determinism import set_determinism

    g = torch.Generator().manual_seed(1)
    data = torch.randn(48, 1, 8, 8, generator=g), torch.randint(0, 3, (48,), generator=g)
    p = {"epochs": 3, "batch_size": 16, "lr": 0.01, "weight_decay": 0.05, "warmup_steps": 2, "label_smoothing": 0.1,
         "grad_clip": 1.0, "crop_padding": 1, "flip": True, "seed": 0}
    cfg = ViTConfig(image_size=8, patch_size=4, dim=8, depth=1, heads=2, num_classes=3, dropout=0.1)  # dropout draws from torch's RNG

    def fit(ck, seed=0):
        set_determinism(seed)
        net = ViT(cfg)
        return net, vs.train_vit(net, p, data, data, 3, 0.0, torch.device("cpu"), ck)

    straight, rows = fit(None)
    ck = tmp_path / "state.pt"
    with monkeypatch.context() as m:  # a job killed during epoch 2: only epoch 1's state reached the disk
        m.setattr(vs, "save_state", lambda path, st: save_state(path, st) if len(st["rows"]) == 1 else None)
        fit(ck)
    assert len(load_state(ck)["rows"]) == 1
    resumed, rows2 = fit(ck, seed=123)  # a fresh process: other initial weights and RNG; the checkpoint restores both
    assert rows2 == rows and len(load_state(ck)["rows"]) == 3
    assert all(torch.equal(straight.state_dict()[k], resumed.state_dict()[k]) for k in straight.state_dict())

    save_state(ck, {**load_state(ck), "key": "another run"})  # other params: ignored, trained from scratch
    assert fit(ck)[1] == rows
