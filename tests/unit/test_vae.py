"""The autoencoder / VAE as the course teaches it: KL in closed form, reparameterisation, shapes."""

import pytest
import torch
from torch.distributions import Normal, kl_divergence as torch_kl

from genpipe.vae import autoencoder
from genpipe.models.vae import Autoencoder, AutoencoderConfig, kl_divergence, reconstruction_nll, reparameterise

TINY = dict(latent_dim=4, width=4, hidden=16)


def test_kl_matches_the_closed_form_and_torch_distributions():
    torch.manual_seed(0)
    mu, log_var = torch.randn(5, 3), torch.randn(5, 3)
    ours = kl_divergence(mu, log_var)
    by_hand = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(1)
    reference = torch_kl(Normal(mu, (0.5 * log_var).exp()), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(ours, by_hand)
    torch.testing.assert_close(ours, reference)
    assert torch.all(kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)) == 0)  # q = prior


def test_reparameterisation_gradients_reach_mu_and_log_var():
    mu = torch.zeros(4, 3, requires_grad=True)
    log_var = torch.zeros(4, 3, requires_grad=True)
    z = reparameterise(mu, log_var, torch.Generator().manual_seed(0))
    z.square().sum().backward()
    assert mu.grad is not None and mu.grad.abs().sum() > 0
    assert log_var.grad is not None and log_var.grad.abs().sum() > 0
    # z = mu + sigma * eps: with sigma -> 0 the sample is mu
    torch.testing.assert_close(reparameterise(torch.ones(2, 3), torch.full((2, 3), -60.0)), torch.ones(2, 3))


def test_reconstruction_nll_is_bernoulli_log_likelihood():
    logits, x = torch.tensor([[[[0.0, 2.0]]]]), torch.tensor([[[[1.0, 0.0]]]])
    expected = -(torch.log(torch.sigmoid(torch.tensor(0.0))) + torch.log(1 - torch.sigmoid(torch.tensor(2.0))))
    torch.testing.assert_close(reconstruction_nll(logits, x), expected.reshape(1))


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_shapes(kind):
    model = Autoencoder(AutoencoderConfig(kind=kind, **TINY))
    x = torch.rand(3, 1, 28, 28)
    code, log_var = model.encode(x)
    assert code.shape == (3, 4) and (log_var is None) == (kind == "ae")
    assert model.decode(code).shape == (3, 1, 28, 28)
    assert 0 <= model.decode(code).min() and model.decode(code).max() <= 1
    terms = model.loss_terms(x)
    assert terms["recon"].shape == terms["kl"].shape == (3,)
    assert (terms["kl"] == 0).all() == (kind == "ae")


def test_elbo_is_minus_recon_minus_kl():
    model = Autoencoder(AutoencoderConfig(kind="vae", **TINY)).eval()
    t = model.elbo_terms(torch.rand(4, 1, 28, 28), torch.Generator().manual_seed(0))
    torch.testing.assert_close(t["elbo"], -(t["recon"] + t["kl"]))


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be 'ae' or 'vae'"):
        AutoencoderConfig(kind="gan")


def test_a_tiny_vae_loss_decreases():
    torch.manual_seed(0)
    x = (torch.rand(64, 1, 28, 28) > 0.7).float()
    model = Autoencoder(AutoencoderConfig(kind="vae", **TINY))
    p = {"lr": 3e-3, "seed": 0, "batch_size": 16, "epochs": 8}
    rows = autoencoder.fit(model, x, x[:16], p, beta=1.0)
    assert rows[-1]["train_loss"] < 0.9 * rows[0]["train_loss"], rows
    assert list(rows[0]) == ["epoch", "train_recon", "train_kl", "train_loss", "val_recon", "val_kl", "val_loss"]


def test_traversal_moves_one_dimension_and_pca_is_ordered():
    model = Autoencoder(AutoencoderConfig(kind="vae", **TINY)).eval()
    grid = autoencoder.traversal(model, torch.rand(1, 28, 28), dims=2, steps=5, scale=torch.ones(4))
    assert grid.shape == (2, 5, 1, 28, 28)
    pts, explained = autoencoder.pca_2d(torch.randn(100, 4) * torch.tensor([5.0, 2.0, 1.0, 0.5]))
    assert pts.shape == (100, 2) and explained[0] >= explained[1] and explained.sum() <= 1
