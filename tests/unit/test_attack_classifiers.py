"""PGD beside FGSM, and the attack_classifiers stage on tiny models trained by their real stages."""

from __future__ import annotations

import copy
import importlib.util
import json

import pytest
import torch
import yaml
from torch import nn

from genpipe.classify import classifier, vit_stage
from genpipe.data import datasets as data
from genpipe.pipeline.params import ParamsError, load_params
from genpipe.robustness import classifiers
from genpipe.robustness.adversarial import PixelInput, fgsm, pgd
from genpipe.robustness.classifiers import AttackError, budget, check_params
from genpipe.robustness.report import robustness_tables, summary_row


def _conv_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)).eval()


def _batch(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    x[0], x[1] = 0.0, 1.0  # pixels on both edges of [0, 1]
    return x, torch.randint(0, 3, (n,), generator=g)


@pytest.mark.parametrize("random_start", [True, False])
@pytest.mark.parametrize("eps", [0.01, 0.1, 0.3, 1.0])
def test_pgd_never_leaves_the_eps_ball_or_the_unit_range(eps, random_start):
    model, (x, y) = _conv_model(), _batch()
    adv = pgd(model, x, y, eps, steps=7, alpha=2.5 * eps / 7 * 3, random_start=random_start, generator=torch.Generator().manual_seed(1))
    assert (adv - x).abs().max() <= eps + 1e-6
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    assert not torch.equal(adv, x)


def test_pgd_with_one_step_no_start_and_alpha_eps_is_fgsm_exactly():
    model, (x, y) = _conv_model(), _batch(64)
    for eps in (0.0, 0.02, 0.1, 0.3):
        assert torch.equal(pgd(model, x, y, eps, steps=1, alpha=eps or 1.0, random_start=False), fgsm(model, x, y, eps)), eps


def test_pgd_is_at_least_as_strong_as_fgsm_and_its_shared_start_is_reused():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    x, _ = _batch(400)
    with torch.no_grad():
        y = model(x).argmax(1)  # every image right when clean
    start = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for eps in (0.01, 0.03, 0.1):
        acc_f = (model(fgsm(model, x, y, eps)).argmax(1) == y).float().mean()
        a = pgd(model, x, y, eps, steps=10, alpha=2.5 * eps / 10, start=start)
        assert torch.equal(a, pgd(model, x, y, eps, steps=10, alpha=2.5 * eps / 10, start=start))  # deterministic given the start
        assert (model(a).argmax(1) == y).float().mean() <= acc_f


def test_eps_at_half_accuracy_interpolates_on_the_grid():
    assert classifiers.eps_at_half([0.8, 0.6, 0.2, 0.0], [0.0, 0.1, 0.2, 0.3]) == pytest.approx(0.15)
    assert classifiers.eps_at_half([0.8, 0.7], [0.0, 0.3]) is None


def test_budget_curve_never_rises():
    correct = [torch.tensor([True, True, True, False]), torch.tensor([True, False, True, False]), torch.tensor([True, True, True, True])]
    assert budget(correct) == [0.75, 0.5, 0.5]  # the raw third point (1.0) would rise


def test_bad_eps_stops_with_a_message_naming_it():
    model, (x, y) = _conv_model(), _batch()
    with pytest.raises(ValueError, match=r"eps = 1.5 is outside \[0, 1\]"):
        pgd(model, x, y, 1.5, steps=1, alpha=0.1)
    with pytest.raises(ValueError, match=r"eps = -0.1 is outside \[0, 1\]"):
        fgsm(model, x, y, -0.1)
    p = load_params("attack")
    with pytest.raises(ValueError, match=r"attack.eps = 2 is outside \[0, 1\]"):
        check_params({**p, "eps": [0.0, 2]})
    with pytest.raises(AttackError, match="attack.eps: .* lacks 0"):
        check_params({**p, "eps": [0.1, 0.2], "transfer_eps": 0.1})
    with pytest.raises(AttackError, match="attack.transfer_eps: 0.07 is not in attack.eps"):
        check_params({**p, "transfer_eps": 0.07})


@pytest.mark.parametrize("edit, message", [
    (lambda a: a.update(eps=[0.0, 1.2]), "attack.eps.1: 1.2 is greater than the maximum of 1"),
    (lambda a: a.update(transfer_eps=-0.1), "attack.transfer_eps: -0.1 is less than or equal to the minimum of 0"),
    (lambda a: a["pgd"].update(step=3), "attack.pgd.step: unknown key"),
    (lambda a: a["pgd"].pop("steps"), "attack.pgd.steps: required key is missing"),
])
def test_params_schema_names_bad_attack_keys(tmp_path, root, edit, message):
    doc = yaml.safe_load((root / "params.yaml").read_text())
    edit(doc["attack"])
    (tmp_path / "workflow").symlink_to(root / "workflow")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ParamsError, match=message):
        load_params("attack", tmp_path / "params.yaml")


def test_pixel_input_keeps_the_models_memory_format():
    seen = []
    probe = nn.Module()
    probe.forward = lambda x: seen.append(x.is_contiguous()) or x.flatten(1)  # type: ignore[method-assign]
    x = torch.rand(2, 1, 4, 4)
    PixelInput(probe, 0.5, 0.25, memory_format=torch.contiguous_format)(x)
    assert seen == [True]
    assert torch.equal(PixelInput(probe, 0.5, 0.25)(x), ((x - 0.5) / 0.25).flatten(1))


# -- the stage on tiny models trained by train_classifier's and train_vit's own code -----------------

def _fake_split(spec, root, train):  # noqa: ARG001  (data.load_split's signature)
    g = torch.Generator().manual_seed(1 if train else 2)
    n = 600 if train else 120
    y = torch.arange(n) % 10
    x = (torch.rand(n, 28, 28, generator=g) * 80).to(torch.uint8)
    for c in range(10):  # a bright bar per class: learnable in one epoch
        x[y == c, 2 * c : 2 * c + 3, :] = 230
    return x, y


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr(data, "load_split", _fake_split)
    root = tmp_path_factory.mktemp("runs")
    torch.set_num_threads(1)
    common = {"epochs": 1, "batch_size": 32, "val_size": 100, "train_limit": None, "eval_limit": None, "seed": 0}
    classifier.run("fashion_mnist", root, root / "resnet", {**common, "depth_n": 1, "width": 4, "norm": "bn", "gn_groups": 2,
                                                            "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0}, "tiny")
    vit_stage.run(root, root / "vit", {**common, "patch_size": 7, "dim": 8, "depth": 1, "heads": 2, "mlp_ratio": 2.0, "dropout": 0.0,
                                       "lr": 0.01, "weight_decay": 0.0, "warmup_steps": 2, "label_smoothing": 0.0, "grad_clip": 1.0,
                                       "crop_padding": 0, "flip": False})
    yield {"resnet": root / "resnet", "vit": root / "vit"}, mp
    mp.undo()


def _params(**pgd_over):
    p = copy.deepcopy(load_params("attack"))
    p.update(eps=[0.0, 0.05, 0.1, 0.3], transfer_eps=0.1, batch_size=50, examples_per_model=1)
    p["pgd"].update(steps=3, n=80, **pgd_over)
    return p


def test_stage_curves_start_at_each_models_own_clean_accuracy_and_never_rise(tiny_runs, tmp_path):
    runs, _ = tiny_runs
    metrics, rows, _ = classifiers.run(runs, tmp_path, _params())
    assert metrics["n"] == {"fgsm": 120, "pgd": 80}
    for name, d in runs.items():
        own = json.loads((d / "metrics.json").read_text())["test"]
        m = metrics["models"][name]
        assert m["fgsm"]["accuracy"]["0.0"] == pytest.approx(own["accuracy"], abs=1e-6)  # all its 120 test images
        assert metrics["clean_check"][name]["pgd"]["equal"] and metrics["clean_check"][name]["pgd"]["n"] == 80
        for a in ("fgsm", "pgd"):
            curve = list(m[a]["accuracy"].values())
            assert all(b <= a_ for a_, b in zip(curve, curve[1:])), (name, a, curve)
            assert m[a]["accuracy"]["0.0"] == m[a]["accuracy_raw"]["0.0"]
            # the diagonal of the transfer matrix is the white-box attack at the default eps
            assert metrics["transfer"][a]["accuracy"][name][name] == m[a]["accuracy_raw"]["0.1"]
        assert m["pgd"]["accuracy"]["0.3"] < m["pgd"]["accuracy"]["0.0"]
    obs = metrics["observation"]
    assert set(obs["more_robust"]) == {"fgsm", "pgd"} and obs["more_robust"]["pgd"] in ("resnet", "vit", "tie")
    assert obs["at_eps"]["pgd"]["more_robust"] in ("resnet", "vit", "tie") and set(obs["eps_at_half_accuracy"]) == {"resnet", "vit"}
    assert set(obs["transfer_gap"]["pgd"]) == {"resnet_to_vit", "vit_to_resnet"}
    assert [r["eps"] for r in rows] == [0.0, 0.05, 0.1, 0.3] and "vit_pgd_raw" in rows[0]


def test_stage_script_writes_its_outputs_and_names_an_unknown_model(tiny_runs, tmp_path, root):
    spec = importlib.util.spec_from_file_location("attack_classifiers_script", root / "scripts" / "attack_classifiers.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    main = script.main
    runs, _ = tiny_runs
    doc = yaml.safe_load((root / "params.yaml").read_text())
    doc["attack"] = _params()
    (tmp_path / "workflow").symlink_to(root / "workflow")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(doc))
    out = tmp_path / "results" / "attack_classifiers"
    args = ["--data", str(tmp_path), "--params", str(tmp_path / "params.yaml"), "--out", str(out)]
    with pytest.raises(SystemExit, match="attack_classifiers: unknown model 'cnn' \\(known: resnet, vit\\)"):
        main(["--model", f"cnn={runs['resnet']}", "--model", f"vit={runs['vit']}", *args])
    main(["--model", f"resnet={runs['resnet']}", "--model", f"vit={runs['vit']}", *args])
    for f in ("metrics.json", "curves.tsv", "curves.png", "transfer.png", "examples.png"):
        assert (out / f).stat().st_size > 0, f
    # the report's tables and the front page's row, from these metrics
    m = json.loads((out / "metrics.json").read_text())
    tables = robustness_tables(tmp_path / "results")
    assert "FGSM on the first 120 test images" in tables and "PGD (3 steps" in tables and "on the first 80:" in tables
    assert "Transfer, PGD at ε = 0.1 (N = 80)" in tables and "(white-box)" in tables and "Bai et al. 2021" in tables
    row = summary_row(tmp_path / "results")
    assert f"{100 * m['transfer']['pgd']['accuracy']['vit']['resnet']:.2f} %" in row and "(N = 80)" in row and row.count("|") == 5


def test_the_same_params_give_the_same_metrics(tiny_runs, tmp_path):
    runs, _ = tiny_runs
    strip = lambda m: {k: v for k, v in m.items() if k not in ("seconds", "cpu_seconds")}  # noqa: E731
    assert strip(classifiers.run(runs, tmp_path, _params())[0]) == strip(classifiers.run(runs, tmp_path, _params())[0])
