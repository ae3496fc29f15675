import pytest
import torch

from genpipe.models.resnet import ResNet, ResNetConfig


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
