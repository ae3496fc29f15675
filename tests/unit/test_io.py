import json
import os

import pytest
import torch

from genpipe.pipeline import io
from genpipe.models.resnet import ResNet, ResNetConfig


def test_atomic_write_leaves_old_file_on_crash(tmp_path):
    dest = tmp_path / "model.bin"
    dest.write_bytes(b"old complete artifact")
    with pytest.raises(RuntimeError):
        with io.atomic_path(dest) as tmp:
            tmp.write_bytes(b"half of the new")
            raise RuntimeError("killed mid-write")
    assert dest.read_bytes() == b"old complete artifact"
    assert list(tmp_path.iterdir()) == [dest]  # no temp file left behind


def test_atomic_write_crash_in_replace_leaves_nothing_new(tmp_path, monkeypatch):
    dest = tmp_path / "metrics.json"

    def boom(*args):
        raise OSError("disk vanished")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        io.write_json(dest, {"a": 1})
    assert not dest.exists() and list(tmp_path.iterdir()) == []


def test_write_json_is_stable(tmp_path):
    io.write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    io.write_json(tmp_path / "b.json", {"a": [1, 2], "b": 1})
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert (tmp_path / "a.json").read_text().endswith("\n")


def test_model_roundtrip_and_config_mismatch(tmp_path):
    cfg = ResNetConfig(width=4)
    model = ResNet(cfg)
    io.save_model(model, cfg.to_dict(), tmp_path / "m.safetensors", tmp_path / "config.json")
    state, config = io.load_state(tmp_path / "m.safetensors", tmp_path / "config.json", expected={"width": 4})
    fresh = ResNet(ResNetConfig(**config))
    fresh.load_state_dict(state)
    for k, v in model.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k])
    with pytest.raises(io.ConfigMismatchError, match="width: expected 16, found 4"):
        io.load_state(tmp_path / "m.safetensors", tmp_path / "config.json", expected={"width": 16})
    (tmp_path / "config.json").write_text(json.dumps({**config, "norm": "gn"}))
    with pytest.raises(io.ConfigMismatchError, match="does not match the config stored in"):
        io.load_state(tmp_path / "m.safetensors", tmp_path / "config.json")


def test_write_tsv(tmp_path):
    io.write_tsv(tmp_path / "c.tsv", [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}])
    assert (tmp_path / "c.tsv").read_text() == "epoch\tloss\n1\t0.5\n2\t0.25\n"
