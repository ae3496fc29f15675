"""The shared training loop on a linear model: EMA bytes, deferred loss reads, the NaN stop, resume."""

from pathlib import Path

import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from genpipe.pipeline import trainloop


class Linear:
    """A Steppable: least squares on fixed data, with an EMA and a checkpoint key."""

    def __init__(self, poison_at: int | None = None) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))  # a buffer of each kind
        self.ema = trainloop.EMA(self.model, 0.9)
        self.opt = trainloop.adamw(self.model.parameters(), torch.device("cpu"), lr=1e-2)
        self.x, self.y = torch.randn(8, 4), torch.randn(8, 3)
        self.step, self.rows, self.poison_at = 0, [], poison_at

    def train_step(self) -> torch.Tensor:
        if self.step == self.poison_at:
            with torch.no_grad():
                self.model[0].weight.fill_(float("nan"))
        loss = torch.nn.functional.mse_loss(self.model(self.x), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.ema.update(self.model)
        return loss

    def row(self, mean_loss: float) -> dict:
        return {"step": self.step, "loss": round(mean_loss, 6)}

    def state(self) -> dict:
        return {"key": "k", "step": self.step, "rows": self.rows, "model": self.model.state_dict(), "ema": self.ema.state_dict()}


def test_the_ema_updates_as_averaged_model_does_byte_for_byte():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    ours = trainloop.EMA(model, 0.9)
    theirs = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    for _ in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(6, 4))  # moves BatchNorm's running stats and its (integer) batch count
        ours.update(model)
        theirs.update_parameters(model)
    a, b = ours.state_dict(), theirs.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert int(a["n_averaged"]) == 5


def test_the_ema_count_survives_a_reload():
    model = torch.nn.Linear(2, 2)
    ema = trainloop.EMA(model, 0.5)
    ema.update(model)
    again = trainloop.EMA(torch.nn.Linear(2, 2), 0.5)
    again.load_state_dict(ema.state_dict())
    with torch.no_grad():
        model.weight.fill_(1.0)
    again.update(model)  # a lerp, not the first update's copy
    assert not torch.equal(again.module.weight, model.weight)


def test_the_loss_window_reads_back_once_and_finds_the_first_bad_step():
    w = trainloop.LossWindow(first_step=10)
    for v in (1.0, 2.0, float("inf"), float("nan")):
        w.add(torch.tensor(v))
    assert w.first_bad() == (12, float("inf"))
    w.clear(14)
    w.add(torch.tensor(0.5))
    w.add(torch.tensor(1.5))
    assert w.first_bad() is None and w.mean() == 1.0


def test_rows_are_the_mean_of_each_window_and_a_checkpoint_is_found_by_its_key(tmp_path: Path):
    t, losses = Linear(), []
    step = t.train_step
    t.train_step = lambda: losses.append(step().item()) or torch.tensor(losses[-1])
    rows = trainloop.run(t, 5, 2, 100, tmp_path / "a.pt", "lin")
    assert [r["step"] for r in rows] == [2, 4, 5]
    assert [r["loss"] for r in rows] == [round(sum(losses[:2]) / 2, 6), round(sum(losses[2:4]) / 2, 6), round(losses[4], 6)]
    assert trainloop.resume(tmp_path / "a.pt", "k")["step"] == 5  # saved at the end
    assert trainloop.resume(tmp_path / "a.pt", "other") is None and trainloop.resume(tmp_path / "none.pt", "k") is None


def test_a_nan_stops_at_its_step_before_any_checkpoint_holds_it(tmp_path: Path):
    t = Linear(poison_at=5)  # the loss of step 5 (0-based) is NaN; log every 4, checkpoint every 3
    with pytest.raises(FloatingPointError, match=r"lin: loss is nan at step 5; the last good checkpoint .* is kept \(hint\)"):
        trainloop.run(t, 20, 4, 3, tmp_path / "n.pt", "lin", nan_hint=" (hint)")
    ck = torch.load(tmp_path / "n.pt", weights_only=True)
    assert ck["step"] == 3 and all(torch.isfinite(v).all() for v in ck["model"].values())
    assert [r["step"] for r in ck["rows"]] == []  # the row of steps 1-4 was written after it
    assert [r["step"] for r in t.rows] == [4]  # and no row holds the NaN
