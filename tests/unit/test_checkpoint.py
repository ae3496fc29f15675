"""train_ddpm's checkpoint: plain tensors only on reading (a pickled payload never runs), a corrupt
file or a full disk named in one clear error, the previous checkpoint and outputs left as they were."""

import errno
import importlib.util
import os
import pickle
from pathlib import Path

import pytest
import torch

from genpipe.ddpm import diffusion
from genpipe.pipeline import params as params_mod
from genpipe.pipeline.checkpoint import CheckpointError, load_state, save_state
from test_diffusion import P, _data

ROOT = Path(__file__).resolve().parents[2]
P1 = P | {"epochs": 1}  # 48 images / batch 16: 3 steps, one checkpoint


class Payload:
    """Unpickled without weights_only, this creates ``marker`` (a directory: no file handle left open)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _trained(tmp_path: Path) -> diffusion.Trainer:
    t = diffusion.Trainer(P1, tmp_path / "ck" / "state.pt")
    t.fit(*_data())
    return t


def _run_script(argv: list[str], monkeypatch) -> None:
    """scripts/train_ddpm.py's main on tiny params and random images (no MNIST, no global determinism)."""
    x, y = _data()
    monkeypatch.setattr(params_mod, "load_params", lambda section, path: P1)
    monkeypatch.setattr(diffusion.data, "load_split", lambda spec, root, train: (((x + 1) * 127.5).to(torch.uint8)[:, 0], y))
    monkeypatch.setattr(diffusion, "set_determinism", lambda seed: None)
    spec = importlib.util.spec_from_file_location("train_ddpm_script", ROOT / "scripts" / "train_ddpm.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(argv)


def _bad_checkpoint(kind: str, ck: Path, tmp_path: Path) -> None:
    if kind == "payload":
        torch.save({"key": diffusion.params_key(P1), "step": 3, "rows": [], "model": Payload(tmp_path / "marker")}, ck)
    else:  # a real checkpoint cut short
        data = ck.read_bytes()
        ck.write_bytes(data[: {"truncated-half": len(data) // 2, "truncated-20kB": 20_000, "empty": 0}[kind]])


def test_the_payload_is_live_without_weights_only(tmp_path):
    pickle.loads(pickle.dumps(Payload(tmp_path / "live")))  # so the tests below would see it run
    assert (tmp_path / "live").is_dir()


@pytest.mark.parametrize("kind", ["payload", "truncated-half", "truncated-20kB", "empty"])
def test_a_bad_checkpoint_is_refused_naming_it_before_any_output_is_touched(tmp_path, monkeypatch, kind):
    t = _trained(tmp_path)
    ck = t.checkpoint
    _bad_checkpoint(kind, ck, tmp_path)
    bad = ck.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    good = {name: os.urandom(64) for name in ("model.safetensors", "config.json", "curves.tsv", "metrics.json")}
    for name, data in good.items():
        (out / name).write_bytes(data)

    with pytest.raises(CheckpointError) as e:
        diffusion.Trainer(P1, ck).try_resume()
    msg = str(e.value)
    assert msg.startswith(f"{ck}: refused: not a readable plain-tensor checkpoint") and "delete it" in msg
    assert ("pickled payload" if kind == "payload" else "truncated or corrupt") in msg, msg

    with pytest.raises(SystemExit) as stop:  # the stage: one line naming the file, no traceback
        _run_script(["--data", str(tmp_path / "mnist"), "--out", str(out), "--checkpoint", str(ck)], monkeypatch)
    assert stop.value.code == f"train_ddpm: {msg}"

    assert not (tmp_path / "marker").exists()
    assert {name: (out / name).read_bytes() for name in good} == good
    assert ck.read_bytes() == bad  # left for the user to look at / delete


def test_the_payload_is_named_as_what_it_asks_for(tmp_path):
    torch.save({"x": Payload(tmp_path / "marker")}, tmp_path / "state.pt")
    with pytest.raises(CheckpointError, match=r"a pickled payload\?; it asks for (os|posix)\.mkdir"):
        load_state(tmp_path / "state.pt")
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize("error", [
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 3008256 vs 3008148"),
    OSError(errno.ENOSPC, "No space left on device"),
])
def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch, error):
    t = _trained(tmp_path)
    before = t.checkpoint.read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        Path(f).write_bytes(before[:1000])  # a partial write, then the failure
        raise error

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError) as e:
        diffusion.Trainer(P1 | {"epochs": 2}, t.checkpoint).fit(*_data())  # resumes at 3, saves at 6
    msg = str(e.value)
    assert f"the disk holding {t.checkpoint} is full" in msg and "bytes free" in msg and msg.startswith(str(t.checkpoint))
    assert e.value.__cause__ is error
    assert t.checkpoint.read_bytes() == before
    assert sorted(p.name for p in t.checkpoint.parent.iterdir()) == ["state.pt"]  # no temporary left


def test_another_write_error_names_the_file_and_the_cause(tmp_path, monkeypatch):
    def denied(obj, f, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(torch, "save", denied)
    with pytest.raises(CheckpointError, match=r"state.pt: checkpoint not written \(PermissionError: .*Permission denied\)"):
        save_state(tmp_path / "state.pt", {"step": 1})
    assert not (tmp_path / "state.pt").exists()


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_a_real_training_state_round_trips_as_plain_tensors(tmp_path):
    t = _trained(tmp_path)
    state = t.state()
    assert state["opt"]["state"] and state["rows"] and state["gen"].dtype == torch.uint8
    save_state(tmp_path / "again.pt", state)
    assert _equal(load_state(tmp_path / "again.pt"), state)
    assert _equal(load_state(t.checkpoint), state)  # the one fit wrote, at its last step
