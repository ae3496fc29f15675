import torch

from genpipe.classify.metrics import classification_metrics, confusion_matrix
from genpipe.models.resnet import ResNet, ResNetConfig
from genpipe.classify.train import TrainConfig, to_input, train_classifier
from genpipe.pipeline.determinism import set_determinism


def test_metrics_against_hand_computation():
    target = torch.tensor([0, 0, 0, 1, 1, 2])
    pred = torch.tensor([0, 0, 1, 1, 1, 1])
    m = classification_metrics(pred, target, 3)
    assert m["accuracy"] == m["f1_micro"] == round(4 / 6, 6)
    # per-class F1: c0 = 2*1*(2/3)/(1+2/3) = 0.8, c1 = 2*0.5*1/1.5 = 2/3, c2 = 0
    assert m["f1_macro"] == round((0.8 + 2 / 3 + 0) / 3, 6)
    cm = confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]


def _toy_data(n=640):
    """Images whose class (0..3) is which quadrant is bright: learnable in a few steps."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.randint(0, 60, (n, 28, 28), generator=g, dtype=torch.uint8)
    for i, c in enumerate(y.tolist()):
        r, q = divmod(c, 2)
        x[i, r * 14 : (r + 1) * 14, q * 14 : (q + 1) * 14] += 150
    return to_input(x, 0.3, 0.3), y


def _train(seed=0, epochs=2):
    set_determinism(seed)
    model = ResNet(ResNetConfig(width=4, num_classes=4)).to(memory_format=torch.channels_last)
    x, y = _toy_data()
    cfg = TrainConfig(epochs=epochs, batch_size=32, lr=0.2, momentum=0.9, weight_decay=5e-4, seed=seed)
    rows = train_classifier(model, cfg, (x[:512], y[:512]), (x[512:], y[512:]), 4)
    return model, rows


def test_training_learns_and_reports_curves():
    _, rows = _train(epochs=3)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["val_accuracy"] >= 0.95


def test_training_is_bitwise_deterministic():
    a, rows_a = _train()
    b, rows_b = _train()
    assert rows_a == rows_b
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    c, _ = _train(seed=1)
    assert not torch.equal(a.fc.weight, c.fc.weight)
