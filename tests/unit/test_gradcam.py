import torch

from genpipe.classify.gradcam import grad_cam
from genpipe.models.resnet import ResNet, ResNetConfig
from genpipe.classify.train import TrainConfig, train_classifier
from genpipe.pipeline.determinism import set_determinism

from test_metrics_train import _toy_data


def test_gradcam_points_at_the_quadrant_that_decides_the_class():
    """Class c = which quadrant is bright; Grad-CAM's mass must sit in that quadrant."""
    set_determinism(0)
    x, y = _toy_data(640)
    model = ResNet(ResNetConfig(width=4, num_classes=4)).to(memory_format=torch.channels_last)
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.2, momentum=0.9, weight_decay=5e-4, seed=0)
    train_classifier(model, cfg, (x[:512], y[:512]), (x[512:], y[512:]), 4)

    cam, logits = grad_cam(model, x[512:], target=y[512:])
    assert cam.shape == (128, 28, 28) and cam.min() >= 0 and torch.allclose(cam.amax(dim=(1, 2)), torch.ones(128))
    assert (logits.argmax(1) == y[512:]).float().mean() > 0.95
    share = []
    for c, m in zip(y[512:].tolist(), cam):
        r, q = divmod(c, 2)
        share.append((m[r * 14 : (r + 1) * 14, q * 14 : (q + 1) * 14].sum() / m.sum()).item())
    assert sum(share) / len(share) > 0.5  # uniform would be 0.25


def test_gradcam_defaults_to_the_predicted_class_and_removes_its_hook():
    model = ResNet(ResNetConfig(width=4)).eval()
    x = torch.randn(3, 1, 28, 28)
    cam_pred, logits = grad_cam(model, x)
    cam_explicit, _ = grad_cam(model, x, target=logits.argmax(1))
    assert torch.allclose(cam_pred, cam_explicit)
    assert not model.stages[-1]._forward_hooks
