import pytest
import torch
import torch.nn.functional as F

from genpipe.models.norms import NORMS, BatchInstanceNorm2d, GroupNorm2d, make_norm


def _x(b=4, c=8, h=5, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, h, w, generator=g) * 3 + 2


def test_instance_norm_normalises_each_sample_and_channel():
    y = make_norm("in", 8)(_x())
    assert torch.allclose(y.mean(dim=(2, 3)), torch.zeros(4, 8), atol=1e-5)
    assert torch.allclose(y.var(dim=(2, 3), unbiased=False), torch.ones(4, 8), atol=1e-3)
    assert torch.allclose(y, F.instance_norm(_x()), atol=1e-5)


def test_layer_norm_normalises_each_sample_over_all_channels():
    y = make_norm("ln", 8)(_x())
    assert torch.allclose(y.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(y.var(dim=(1, 2, 3), unbiased=False), torch.ones(4), atol=1e-3)
    # but not per channel
    assert y.mean(dim=(2, 3)).abs().max() > 0.05
    assert torch.allclose(y, F.layer_norm(_x(), (8, 5, 6)), atol=1e-5)


def test_group_norm_normalises_each_group():
    y = make_norm("gn", 8, groups=2)(_x())
    grouped = y.reshape(4, 2, -1)
    assert torch.allclose(grouped.mean(-1), torch.zeros(4, 2), atol=1e-5)
    assert torch.allclose(grouped.var(-1, unbiased=False), torch.ones(4, 2), atol=1e-3)
    assert torch.allclose(y, F.group_norm(_x(), 2), atol=1e-5)


def test_batch_norm_normalises_each_channel_over_the_batch():
    y = make_norm("bn", 8).train()(_x())
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(8), atol=1e-5)
    assert torch.allclose(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(8), atol=1e-3)
    # per sample it is not normalised
    assert y.mean(dim=(2, 3)).abs().max() > 0.05


def test_batch_instance_norm_mixes_bn_and_in_with_its_gate():
    x = _x()
    bin_ = BatchInstanceNorm2d(8).train()
    bn = F.batch_norm(x, None, None, training=True)
    inn = F.instance_norm(x)
    with torch.no_grad():
        bin_.rho.copy_(torch.linspace(0, 1, 8))
    rho = torch.linspace(0, 1, 8)[:, None, None]
    assert torch.allclose(bin_(x), rho * bn + (1 - rho) * inn, atol=1e-5)
    with torch.no_grad():
        bin_.rho.fill_(1.0)
    assert torch.allclose(bin_(x), bn, atol=1e-5)
    with torch.no_grad():
        bin_.rho.fill_(0.0)
    assert torch.allclose(bin_(x), inn, atol=1e-5)


def test_batch_instance_norm_fused_pass_matches_bn_plus_in_in_gradients_and_running_stats():
    """The one-pass implementation equals the textbook BN + IN mix: outputs, gradients, buffers."""
    x = _x().requires_grad_()
    fused = BatchInstanceNorm2d(8).train()
    bn = torch.nn.BatchNorm2d(8, affine=False).train()
    with torch.no_grad():
        fused.rho.copy_(torch.linspace(0, 1, 8))
        fused.weight.copy_(torch.linspace(0.5, 2, 8))
        fused.bias.copy_(torch.linspace(-1, 1, 8))
    ref_params = [p.detach().clone().requires_grad_() for p in (fused.rho, fused.weight, fused.bias)]
    rho, gamma, beta = (p[:, None, None] for p in ref_params)
    x_ref = x.detach().clone().requires_grad_()
    ref = (rho * bn(x_ref) + (1 - rho) * F.instance_norm(x_ref)) * gamma + beta
    out = fused(x)
    g = _x(seed=3)
    (out * g).sum().backward()
    (ref * g).sum().backward()
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-4)
    for p, r in zip((fused.rho, fused.weight, fused.bias), ref_params):
        assert torch.allclose(p.grad, r.grad, rtol=1e-4, atol=1e-3), (p.grad, r.grad)
    assert torch.allclose(fused.running_mean, bn.running_mean, atol=1e-6)
    assert torch.allclose(fused.running_var, bn.running_var, atol=1e-5)
    fused.eval(), bn.eval()
    with torch.no_grad():
        assert torch.allclose(fused(x), (rho * bn(x) + (1 - rho) * F.instance_norm(x)) * gamma + beta, atol=1e-5)


def test_batch_instance_gate_is_learnt_and_clipped_to_unit_interval():
    bin_ = BatchInstanceNorm2d(8).train()  # gate initialised at 1: the gradient must not vanish there
    (bin_(_x()) * _x(seed=1)).sum().backward()
    assert bin_.rho.grad is not None and (bin_.rho.grad != 0).all()
    with torch.no_grad():
        bin_.rho.copy_(torch.linspace(-1, 2, 8))
    bin_.clip_gate_()
    assert bin_.rho.min() >= 0 and bin_.rho.max() <= 1


@pytest.mark.parametrize("kind", NORMS)
def test_affine_parameters_apply_per_channel(kind):
    norm = make_norm(kind, 8, groups=4).eval()
    with torch.no_grad():
        norm.weight.fill_(2.0)
        norm.bias.fill_(3.0)
    x = _x()
    norm.train()
    y = norm(x)
    # output = 2 * standardised + 3, so its mean over everything is 3
    assert abs(y.mean().item() - 3.0) < 0.3


def test_group_norm_rejects_groups_that_do_not_divide_channels():
    with pytest.raises(ValueError, match="groups=3 must divide channels=8"):
        GroupNorm2d(8, 3)


def test_unknown_norm_is_named():
    with pytest.raises(ValueError, match="unknown norm 'xx'"):
        make_norm("xx", 8)


@pytest.mark.parametrize("kind, groups", [("in", 8), ("ln", 1), ("gn", 2)])
def test_modules_equal_the_written_out_definition(kind, groups):
    from genpipe.models.norms import group_standardise

    x = _x()
    norm = make_norm(kind, 8, groups=2)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2, 8))
        norm.bias.copy_(torch.linspace(-1, 1, 8))
    expected = group_standardise(x, groups, 1e-5) * norm.weight[:, None, None] + norm.bias[:, None, None]
    assert torch.allclose(norm(x), expected, atol=1e-5)
