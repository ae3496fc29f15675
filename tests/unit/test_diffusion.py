"""DDPM training and sampling at tiny size: resume equals straight training, NaN stops, guidance."""

import json
import os
import subprocess
import sys

import pytest
import torch

from genpipe.ddpm import diffusion
from genpipe.ddpm.stages import balanced_labels
from genpipe.pipeline.params import load_params

P = dict(channels=8, mults=[1, 2], res_blocks=1, attn_resolutions=[14], heads=2, dropout=0.1, groups=4,
         timesteps=100, beta_schedule="linear", p_uncond=0.2, ema_decay=0.9, lr=2e-3, weight_decay=0.0, warmup_steps=3,
         grad_clip=1.0, batch_size=16, epochs=2, log_every=2, checkpoint_every=3, train_limit=None, seed=0, precision="fp32")


def _data(n=48):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 28, 28, generator=g) * 2 - 1, torch.randint(0, 10, (n,), generator=g)


def _states(trainer):
    return {**{f"m.{k}": v for k, v in trainer.model.state_dict().items()}, **{f"e.{k}": v for k, v in trainer.ema.state_dict().items()}}


@pytest.mark.parametrize("precision", diffusion.PRECISIONS)
def test_two_plus_two_epochs_equal_four_straight_byte_for_byte(tmp_path, precision):
    x, y = _data()
    p = P | {"precision": precision}
    diffusion.Trainer(p, tmp_path / "a.pt").fit(x, y)  # 2 epochs, checkpoint at the end
    resumed = diffusion.Trainer(p | {"epochs": 4}, tmp_path / "a.pt")
    resumed.fit(x, y)  # continues at step 6
    straight = diffusion.Trainer(p | {"epochs": 4}, tmp_path / "b.pt")
    straight.fit(x, y)
    a, b = _states(resumed), _states(straight)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.rows == straight.rows and resumed.step == straight.step == 12


def test_a_killed_run_continues_from_its_last_checkpoint(tmp_path):
    x, y = _data()

    class Killed(Exception):
        pass

    def kill_at(step):
        if step == 7:
            raise Killed

    with pytest.raises(Killed):
        diffusion.Trainer(P | {"epochs": 4}, tmp_path / "k.pt").fit(x, y, on_step=kill_at)
    assert torch.load(tmp_path / "k.pt", weights_only=True)["step"] == 6  # checkpoint_every = 3
    resumed = diffusion.Trainer(P | {"epochs": 4}, tmp_path / "k.pt")
    resumed.fit(x, y)
    straight = diffusion.Trainer(P | {"epochs": 4}, tmp_path / "s.pt")
    straight.fit(x, y)
    a, b = _states(resumed), _states(straight)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_of_other_params_is_not_resumed(tmp_path, capsys):
    x, y = _data()
    diffusion.Trainer(P, tmp_path / "c.pt").fit(x, y)
    t = diffusion.Trainer(P | {"lr": 1e-3}, tmp_path / "c.pt")
    assert not t.try_resume() and t.step == 0
    assert "other params" in capsys.readouterr().err


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    x, y = _data()
    t = diffusion.Trainer(P | {"epochs": 4}, tmp_path / "n.pt")

    def poison(step):
        if step == 4:  # after the checkpoint at step 3
            with torch.no_grad():
                t.model.conv_in.weight.fill_(float("nan"))

    with pytest.raises(FloatingPointError, match="at step 4"):
        t.fit(x, y, on_step=poison)
    ck = torch.load(tmp_path / "n.pt", weights_only=True)
    assert ck["step"] == 3 and all(torch.isfinite(v).all() for v in ck["model"].values())


def test_training_lowers_the_loss(tmp_path):
    x = torch.zeros(64, 1, 28, 28) - 1.0  # a black image: easy to denoise
    x[:, :, 10:18, 10:18] = 1.0
    t = diffusion.Trainer(P | {"epochs": 6, "dropout": 0.0, "p_uncond": 0.0}, tmp_path / "l.pt")
    rows = t.fit(x, torch.zeros(64, dtype=torch.long))
    assert rows[-1]["loss"] < 0.6 * rows[0]["loss"]


def test_guidance_combines_conditional_and_null_predictions():
    torch.manual_seed(0)
    net = diffusion.build(P).eval()
    torch.nn.init.normal_(net.label_emb.weight)
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([50])
    labels = torch.tensor([2, 7, net.config.null_label])
    cond, uncond = net(x, t.expand(3), labels), net(x, t.expand(3), torch.full((3,), net.config.null_label))
    g = diffusion.guided_eps(net, x, t, labels, 3.0)
    assert torch.allclose(g[:2], uncond[:2] + 3.0 * (cond[:2] - uncond[:2]), atol=1e-5)
    assert torch.allclose(g[2], uncond[2], atol=1e-6)  # null-label rows are not guided
    assert torch.allclose(diffusion.guided_eps(net, x, t, labels, 1.0), cond)


@pytest.mark.parametrize("name, steps", [("ddpm", 25), ("ddim", 10), ("dpmpp", 5)])
def test_each_sampler_gives_images_in_range_and_a_trajectory(name, steps):
    torch.manual_seed(0)
    net = diffusion.build(P).eval()
    sched = diffusion.sampler(name, dict(diffusion.noise_scheduler(P).config))
    labels = balanced_labels(12)
    x, snaps = diffusion.sample(net, sched, labels, steps, 2.0, seed=0, batch_size=8, snapshots=4, progress=False)
    assert x.shape == (12, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    assert len(snaps) == 4 and -1 in snaps and max(snaps) >= 0.8 * 100
    again, _ = diffusion.sample(net, sched, labels, steps, 2.0, seed=0, batch_size=8, progress=False)
    assert torch.equal(x, again)  # seeded


def test_bf16_sampling_follows_the_fp32_path():
    """Same noise, same net: bf16 autocast moves the samples by a fraction of a grey level, not to other images."""
    torch.manual_seed(0)
    net = diffusion.build(P).eval()
    torch.nn.init.normal_(net.label_emb.weight)
    sched = diffusion.sampler("dpmpp", dict(diffusion.noise_scheduler(P).config))
    labels = balanced_labels(8)
    run = {prec: diffusion.sample(net, sched, labels, 5, 2.0, seed=0, batch_size=8, progress=False, precision=prec)[0]
           for prec in diffusion.PRECISIONS}
    diff = (run["bf16"] - run["fp32"]).abs()
    assert run["bf16"].dtype == torch.float32 and 0 < diff.max() < 0.05 and diff.mean() < 0.005
    assert next(net.parameters()).dtype == torch.float32  # autocast leaves the weights alone


def test_unknown_precision_is_named():
    with pytest.raises(ValueError, match="precision 'fp16' is not one of"):
        diffusion.autocast("fp16", torch.device("cpu"))


def test_unknown_sampler_is_named():
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        diffusion.sampler("euler", {})


def test_samplers_keep_x0_in_the_data_range_the_way_each_step_allows():
    config = dict(diffusion.noise_scheduler(P).config)
    assert diffusion.sampler("ddpm", config).config.clip_sample  # the posterior mean is recomputed from the clipped x0
    assert not diffusion.sampler("ddim", config).config.clip_sample  # DDIM reuses the unclipped eps: clipping x0 breaks it
    dpmpp = diffusion.sampler("dpmpp", config).config
    assert dpmpp.thresholding and dpmpp.sample_max_value == 1.0 and dpmpp.algorithm_type == "dpmsolver++"


def test_dpmpp_takes_its_options_from_params_and_other_samplers_refuse_them():
    config = dict(diffusion.noise_scheduler(P).config)
    sp = load_params("sample_ddpm")["samplers"]
    dpmpp = diffusion.sampler("dpmpp", config, **diffusion.sampler_options(sp["dpmpp"])).config
    assert (dpmpp.algorithm_type, dpmpp.use_karras_sigmas, dpmpp.solver_order) == ("sde-dpmsolver++", True, 2)
    assert diffusion.sampler_options(sp["ddim"]) == {}
    with pytest.raises(ValueError, match="sampler 'ddim' takes no options; got \\['use_karras_sigmas'\\]"):
        diffusion.sampler("ddim", config, use_karras_sigmas=True)


def test_the_sde_solver_draws_its_noise_from_the_seed():
    torch.manual_seed(0)
    net = diffusion.build(P).eval()
    config = dict(diffusion.noise_scheduler(P).config)
    sched = diffusion.sampler("dpmpp", config, algorithm_type="sde-dpmsolver++", use_karras_sigmas=True)
    labels = balanced_labels(6)
    a, b = (diffusion.sample(net, sched, labels, 5, 2.0, seed=0, batch_size=6, progress=False)[0] for _ in range(2))
    assert torch.equal(a, b)  # the global RNG moved between the two runs; the SDE noise comes from the seeded generator
    ode = diffusion.sampler("dpmpp", config, use_karras_sigmas=True)
    assert not torch.equal(a, diffusion.sample(net, ode, labels, 5, 2.0, seed=0, batch_size=6, progress=False)[0])


def test_an_ema_that_still_holds_the_untrained_weights_is_warned_of():
    # the full preset (decay 0.999) cut to 2 epochs on a GPU: 0.999 ** 937 = 39 % of step 1's weights
    assert "39%" in diffusion.ema_warning({"ema_decay": 0.999}, 938)
    assert diffusion.ema_warning({"ema_decay": 0.999}, 9380) is None  # 20 epochs
    defaults = load_params("train_ddpm")
    assert diffusion.ema_warning(defaults, -(-60_000 // defaults["batch_size"]) * defaults["epochs"]) is None


def test_the_saved_schedule_config_does_not_depend_on_the_hash_seed():
    code = ("import json; from genpipe.ddpm import diffusion; "
            "print(json.dumps(diffusion.scheduler_config(diffusion.noise_scheduler({'timesteps': 100, 'beta_schedule': 'linear'}))))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outs) == 1
    config = json.loads(outs.pop())
    assert config["num_train_timesteps"] == 100 and not any(k.startswith("_") for k in config)
    # each sampler is built as from diffusers' own config (its own defaults for the keys left unset)
    full = dict(diffusion.noise_scheduler({"timesteps": 100, "beta_schedule": "linear"}).config)
    for name in diffusion.SAMPLERS:
        assert dict(diffusion.sampler(name, config).config) == dict(diffusion.sampler(name, full).config)
    assert diffusion.sampler("dpmpp", config).config.timestep_spacing == "linspace"
