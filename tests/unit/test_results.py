"""The committed results of the default run (metrics.json files in git) meet what the issues ask."""

import pytest

from genpipe.pipeline.io import read_json

MODELS = ("latent_frozen", "latent_finetune", "resnet")


def test_fgsm_curve_starts_at_the_clean_accuracy_and_does_not_rise(root):
    m = read_json(root / "results/attack_fgsm/metrics.json")
    assert m["eps"][0] == 0 and m["eps"] == sorted(m["eps"])
    for name in MODELS:
        acc = [m[name]["accuracy"][str(e)] for e in m["eps"]]
        assert m[name]["clean_n"] == m["n"]
        assert acc[0] == pytest.approx(m[name]["clean_accuracy"], abs=1e-9), name  # the probe's / classifier's own metrics.json
        assert all(b <= a for a, b in zip(acc, acc[1:])), (name, acc)
        step = [m[name]["accuracy_single_step"][str(e)] for e in m["eps"]]
        assert all(s >= a for s, a in zip(step, acc)), name  # the budget attacker is at least as strong


def test_autoencoder_floors(root):
    probes = {v: read_json(root / f"results/train_latent_probe/{v}/metrics.json")["test"] for v in ("frozen", "finetune")}
    assert probes["frozen"]["accuracy"] >= 0.80 and probes["finetune"]["accuracy"] >= 0.90, probes
    assert read_json(root / "results/vae_anomaly/metrics.json")["auc_neg_elbo"] >= 0.80
    fid = {g: read_json(root / f"results/evaluate_samples/{g}/metrics.json")["fid"] for g in ("vae", "ae_gaussian")}
    assert fid["vae"] < fid["ae_gaussian"], fid
    vae = read_json(root / "results/train_vae/metrics.json")["test"]
    assert vae["elbo"] == pytest.approx(-(vae["recon"] + vae["kl"]), abs=0.01)
