import json

import pandas as pd
import pytest
import torch

from genpipe.models.resnet import ResNet, ResNetConfig
from genpipe.pipeline.io import save_model
from genpipe.classify.norm_study import bin_gates, collect, markdown_table, observations, summary


def _write_run(root, name, acc):
    d = root / name
    d.mkdir(parents=True)
    m = {s: {"accuracy": acc[s], "f1_micro": acc[s], "f1_macro": acc[s] - 0.01} for s in ("train", "val", "test")}
    (d / "metrics.json").write_text(json.dumps(m))


@pytest.fixture()
def runs(tmp_path):
    for norm, base in (("bn", 0.90), ("in", 0.85), ("gn", 0.88)):
        for seed, delta in ((0, -0.01), (1, 0.01)):
            _write_run(tmp_path / "study", f"{norm}-{seed}", {"train": base + 0.05 + delta, "val": base + delta, "test": base + delta})
    for norm, errs in (("bn", {2: 0.40, 64: 0.15}), ("gn", {2: 0.20, 64: 0.16})):
        for b, e in errs.items():
            _write_run(tmp_path / "sb", f"{norm}-{b}", {"train": 1 - e, "val": 1 - e, "test": 1 - e})
    return tmp_path


def test_summary_is_mean_and_std_over_seeds(runs):
    summ = summary(collect(runs / "study", [(n, s) for n in ("bn", "in", "gn") for s in (0, 1)]), ["bn", "in", "gn"])
    bn_test = summ[(summ["norm"] == "bn") & (summ["split"] == "test")].iloc[0]
    assert bn_test["accuracy_mean"] == pytest.approx(0.90)
    assert bn_test["accuracy_std"] == pytest.approx(0.0141421, abs=1e-6)  # sample std of 0.89, 0.91
    assert list(summ["norm"].unique()) == ["bn", "in", "gn"]  # params order kept
    table = markdown_table(summ, 2)
    assert "| BatchNorm (`bn`) | 95.00 ± 1.41 | 90.00 ± 1.41 | 90.00 ± 1.41 | 89.00 ± 1.41 |" in table


def test_observations_are_computed_from_the_results(runs):
    summ = summary(collect(runs / "study", [(n, s) for n in ("bn", "in", "gn") for s in (0, 1)]), ["bn", "in", "gn"])
    sb = collect(runs / "sb", [(n, b) for n in ("bn", "gn") for b in (2, 64)])
    text = "\n".join(observations(summ, sb, pd.DataFrame()))
    assert "**Winner:** BatchNorm with 90.00 %" in text
    assert "InstanceNorm 85.00 %" in text and "(-5.00 points)" in text
    assert "at batch 2, GroupNorm's test error is 20.00 % vs BatchNorm's 40.00 % (+20.00 points in GN's favour)" in text
    assert "reproduces the direction of" in text


def test_bin_gates_read_from_weights(tmp_path):
    model = ResNet(ResNetConfig(width=4, norm="bin"))
    with torch.no_grad():
        for i, m in enumerate(x for x in model.modules() if hasattr(x, "rho")):
            m.rho.fill_(0.1 * (i % 10))
    save_model(model, {}, tmp_path / "bin-0" / "model.safetensors", tmp_path / "bin-0" / "config.json")
    gates = bin_gates([tmp_path / "bin-0"])
    assert len(gates) == 1 + 3 * 2 + 2  # stem + 2 per block (n=1) + 2 projection shortcuts
    assert gates["mean"].tolist()[:3] == pytest.approx([0.0, 0.1, 0.2])
