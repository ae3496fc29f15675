import subprocess
import sys

import pytest
import torch

from genpipe.models.resnet import ResNet, ResNetConfig, StridedPointwise


@pytest.mark.parametrize("norm", ["bn", "in", "bin", "ln", "gn"])
def test_shapes_for_every_norm(norm):
    model = ResNet(ResNetConfig(depth_n=1, width=8, norm=norm, gn_groups=4)).to(memory_format=torch.channels_last)
    x = torch.randn(3, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    assert model(x).shape == (3, 10)
    assert model.features(x).shape == (3, 32)
    assert model.feature_dim == 32


@pytest.mark.parametrize("n", [1, 2, 3])
def test_depth_is_6n_plus_2(n):
    model = ResNet(ResNetConfig(depth_n=n, width=4, norm="bn"))
    convs = [m for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and "shortcut" not in name]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) + len(linears) == 6 * n + 2 == model.cfg.depth


def test_stages_downsample_28_to_7():
    model = ResNet(ResNetConfig(width=4))
    h = model.stages(model.stem(torch.randn(2, 1, 28, 28)))
    assert h.shape == (2, 16, 7, 7)


def test_features_are_the_input_of_the_classifier():
    model = ResNet(ResNetConfig(width=4)).eval()
    x = torch.randn(2, 1, 28, 28)
    assert torch.allclose(model(x), model.fc(model.features(x)))


def test_strided_pointwise_equals_a_strided_1x1_conv():
    torch.manual_seed(0)
    ours = StridedPointwise(4, 8, 2)
    ref = torch.nn.Conv2d(4, 8, 1, 2, bias=False)
    ref.weight.data.copy_(ours.weight.data)
    x = torch.randn(3, 4, 28, 28)
    assert torch.allclose(ours(x), ref(x), atol=1e-6)


def test_few_channel_shortcut_trains_in_channels_last_on_one_thread():
    """The configuration that crashed oneDNN's AVX2 1x1 stride-2 kernel (a subprocess: a crash fails, not hangs)."""
    code = (
        "import torch; torch.set_num_threads(1); from genpipe.models.resnet import ResNet, ResNetConfig\n"
        "m = ResNet(ResNetConfig(width=4, num_classes=4)).to(memory_format=torch.channels_last)\n"
        "x = torch.randn(32, 1, 28, 28).contiguous(memory_format=torch.channels_last)\n"
        "for _ in range(5): m(x).sum().backward()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
