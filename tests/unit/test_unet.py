"""The course's U-Net: shapes, the sinusoidal time embedding, attention and the null label."""

import math

import pytest
import torch

from genpipe.models.unet import Attention, ResBlock, UNet, UNetConfig, timestep_embedding

TINY = UNetConfig(channels=8, mults=(1, 2), res_blocks=1, attn_resolutions=(14,), heads=2, dropout=0.0, groups=4)


@pytest.mark.parametrize("cfg, n_attn", [
    (TINY, 1 + 1 + 2),  # middle, the 14x14 level down (1 block) and up (2 blocks)
    (UNetConfig(channels=8, mults=(1, 2, 2), attn_resolutions=(7, 14), heads=2, groups=4), 1 + 2 + 4),
])
def test_output_has_the_input_shape(cfg, n_attn):
    net = UNet(cfg)
    x = torch.randn(3, 1, 28, 28)
    out = net(x, torch.tensor([0, 500, 999]), torch.tensor([1, 5, cfg.null_label]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert sum(isinstance(m, Attention) for m in net.modules()) == n_attn


def test_time_embedding_matches_the_formula():
    t = torch.tensor([0, 1, 17, 999])
    dim = 16
    emb = timestep_embedding(t, dim)
    for r, tv in enumerate(t.tolist()):
        for i in range(dim // 2):
            w = 10000 ** (-i / (dim // 2))
            assert emb[r, i].item() == pytest.approx(math.sin(tv * w), abs=1e-5)
            assert emb[r, dim // 2 + i].item() == pytest.approx(math.cos(tv * w), abs=1e-5)


def test_attention_equals_a_reference_computation():
    torch.manual_seed(0)
    attn = Attention(8, heads=2, groups=4)
    h = torch.randn(2, 5, 8)
    ours = attn.attend(h)
    # reference: per head, softmax(Q K^T / sqrt(d)) V with the same projections, heads concatenated
    q, k, v = attn.q(h), attn.k(h), attn.v(h)
    heads = []
    for i in range(2):
        sl = slice(4 * i, 4 * (i + 1))
        w = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / 2.0, dim=-1)
        heads.append(w @ v[..., sl])
    assert torch.allclose(ours, attn.proj(torch.cat(heads, dim=-1)), atol=1e-6)
    # and torch's fused kernel agrees
    b, n, c = h.shape
    split = lambda t: t.view(b, n, 2, 4).transpose(1, 2)  # noqa: E731
    fused = torch.nn.functional.scaled_dot_product_attention(split(q), split(k), split(v)).transpose(1, 2).reshape(b, n, c)
    assert torch.allclose(ours, attn.proj(fused), atol=1e-5)


def test_resblock_adds_the_embedding_and_projects_the_residual():
    block = ResBlock(4, 8, emb_dim=6, groups=2, dropout=0.0)
    assert isinstance(block.skip, torch.nn.Conv2d) and block.skip.kernel_size == (1, 1)
    x, e1, e2 = torch.randn(2, 4, 7, 7), torch.randn(2, 6), torch.randn(2, 6)
    assert block(x, e1).shape == (2, 8, 7, 7)
    assert not torch.allclose(block(x, e1), block(x, e2))


def test_the_null_label_ignores_the_class():
    """With the null label the output cannot depend on any class; with a class it does."""
    torch.manual_seed(0)
    net = UNet(TINY).eval()
    torch.nn.init.normal_(net.label_emb.weight)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([10, 600])
    null = torch.full((2,), TINY.null_label)
    out_null = net(x, t, null)
    assert torch.equal(out_null, net(x, t, null.clone()))
    assert not torch.allclose(net(x, t, torch.tensor([3, 3])), net(x, t, torch.tensor([7, 7])))
    assert net.label_emb.num_embeddings == TINY.num_classes + 1


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="divisible by groups"):
        UNetConfig(channels=12, groups=8)
    with pytest.raises(ValueError, match="cannot be halved"):
        UNetConfig(mults=(1, 2, 2, 2))
