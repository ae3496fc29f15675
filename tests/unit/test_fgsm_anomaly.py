"""FGSM and the anomaly ROC on cases whose answer is known."""

import pytest
import torch
from torch import nn

from genpipe.robustness.adversarial import accuracy_under_attack, fgsm
from genpipe.vae.anomaly import roc


def _linear_model():
    """Class 1 iff the mean pixel exceeds 0.5: FGSM pushes every pixel against the true class."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[-1.0] * 4, [1.0] * 4]))
        model[1].bias.copy_(torch.tensor([2.0, -2.0]))
    return model


def test_fgsm_moves_each_pixel_by_eps_against_the_label():
    model = _linear_model()
    x = torch.full((2, 1, 2, 2), 0.5) + torch.tensor([0.1, -0.1]).view(2, 1, 1, 1)  # class 1, class 0
    y = torch.tensor([1, 0])
    adv = fgsm(model, x, y, 0.05)
    torch.testing.assert_close(adv - x, torch.tensor([-0.05, 0.05]).view(2, 1, 1, 1).expand(2, 1, 2, 2))
    assert torch.equal(fgsm(model, x, y, 0.0), x)
    assert fgsm(model, torch.zeros(1, 1, 2, 2), torch.tensor([1]), 0.3).min() >= 0  # stays in [0, 1]


def test_accuracy_under_attack_falls_with_eps():
    torch.manual_seed(0)
    model = _linear_model()
    x = torch.rand(200, 1, 2, 2)
    y = (x.mean((1, 2, 3)) > 0.5).long()
    accs = [accuracy_under_attack(model, x, y, eps)[0] for eps in (0.0, 0.02, 0.05, 0.1, 0.3)]
    assert accs[0] == 1.0 and accs[-1] < 0.1  # a few images cannot move far enough inside [0, 1]
    assert all(b <= a for a, b in zip(accs, accs[1:])), accs


def test_roc_auc_of_known_scores():
    auc, curve = roc(torch.tensor([0.1, 0.2, 0.3, 0.9]), torch.tensor([False, False, True, True]))
    assert auc == 1.0 and curve[0]["fpr"] == 0.0 and curve[-1] == {"fpr": 1.0, "tpr": 1.0}
    auc, _ = roc(torch.tensor([0.9, 0.2, 0.3, 0.1]), torch.tensor([False, False, True, True]))
    assert auc == pytest.approx(0.25)
    # scores in nats (hundreds), as -ELBO gives them: not squashed into ties
    auc, _ = roc(torch.tensor([240.0, 250.0, 260.0, 300.0]), torch.tensor([False, True, False, True]))
    assert auc == pytest.approx(0.75)
    with pytest.raises(ValueError, match="both normal and anomalous"):
        roc(torch.rand(3), torch.tensor([True, True, True]))
