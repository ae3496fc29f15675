import hashlib
import json
import os
import subprocess
import sys

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


_SAVE_IN_A_FRESH_PROCESS = """
import sys, torch
from genpipe.pipeline import io
g = torch.Generator().manual_seed(0)
tensors = {"train": torch.randn(5, 4, generator=g), "test": torch.randn(7, 4, generator=g), "inception_test": torch.arange(6.0)}
config = {"feature_dim": 4, "dataset": "mnist", "classifier_sha256": "ab" * 32, "nested": {"z": 1, "a": [2, 3]}}
io.save_tensors(sys.argv[1], tensors, config)
"""


def test_save_tensors_gives_the_same_bytes_in_every_process(tmp_path):
    """safetensors 0.8 writes several metadata keys in a per-process order; save_tensors writes one."""
    paths = [tmp_path / f"features_{seed}.safetensors" for seed in (0, 1, 2)]
    for seed, path in zip((0, 1, 2), paths):
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        subprocess.run([sys.executable, "-c", _SAVE_IN_A_FRESH_PROCESS, str(path)], env=env, check=True)
    digests = {hashlib.md5(p.read_bytes()).hexdigest() for p in paths}
    assert len(digests) == 1, digests
    tensors, config = io.load_tensors(paths[0])
    assert config == {"feature_dim": 4, "dataset": "mnist", "classifier_sha256": "ab" * 32, "nested": {"z": 1, "a": [2, 3]}}
    assert io.read_tensors_config(paths[0]) == config
    assert set(tensors) == {"train", "test", "inception_test"} and torch.equal(tensors["inception_test"], torch.arange(6.0))
    with pytest.raises(KeyError, match="has no 'val'"):
        io.load_tensors(paths[0], ["test", "val"])


def test_save_model_format_is_pinned(tmp_path):
    """Model files keep one metadata key, "config", with json.dumps(config, sort_keys=True): trained
    models' hashes stay what they were before save_tensors."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    torch.manual_seed(0)
    cfg = ResNetConfig(width=4)
    model = ResNet(cfg)
    io.save_model(model, cfg.to_dict(), tmp_path / "m.safetensors", tmp_path / "config.json")
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as fh:
        assert fh.metadata() == {"config": json.dumps(cfg.to_dict(), sort_keys=True)}
    # the bytes the former save_model wrote (save_file with that one key)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp_path / "old.safetensors"),
              metadata={"config": json.dumps(cfg.to_dict(), sort_keys=True)})
    assert (tmp_path / "m.safetensors").read_bytes() == (tmp_path / "old.safetensors").read_bytes()
    assert io.read_tensors_config(tmp_path / "m.safetensors") == cfg.to_dict()
    io.save_tensors(tmp_path / "bare.safetensors", {"w": torch.ones(2)})
    assert io.read_tensors_config(tmp_path / "bare.safetensors") is None


def test_write_tsv(tmp_path):
    io.write_tsv(tmp_path / "c.tsv", [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}])
    assert (tmp_path / "c.tsv").read_text() == "epoch\tloss\n1\t0.5\n2\t0.25\n"
