"""DVC remotes for real: an SSH remote served by Debian's sshd on 127.0.0.1 (key auth, dvc-ssh) and a local directory.

Push from the built tiny project, pull into a fresh clone: nothing to recompute (`snakemake -n` empty,
`dvc status` clean). A corrupted object in the remote is caught by DVC's hash check on pull
(`verify = true`, which the README recommends: without it DVC checks out the corrupted bytes silently).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from e2e_project import clone, run, sh

pytestmark = pytest.mark.e2e


def cached_outs(project: Path) -> dict[str, str]:
    """{path: md5} of the DVC-cached outputs in dvc.lock (metrics, curves and the report are in git)."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    tracked = set(sh("git ls-files", project).split())
    return {o["path"]: o["md5"] for s in lock.values() for o in s["outs"] if o["path"] not in tracked}


@pytest.fixture(scope="module")
def remotes(project, sshd, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("remotes")
    src = clone(project, base / "src", checkout=False)  # pushes from the built project's cache
    urls = {"ssh": sshd.url(base / "ssh-remote"), "local": str(base / "local-remote")}
    for name, url in urls.items():
        sh(f"dvc remote add {name} {url} && dvc remote modify {name} verify true", src)
    sh(f"dvc remote modify --local ssh keyfile {sshd.key}", src)
    sh("git add .dvc/config && git commit -qm remotes", src)
    for name in urls:
        assert " pushed" in sh(f"dvc push -r {name}", src)
    return src, urls


def fresh_clone(src: Path, dest: Path, key: Path) -> Path:
    sh(f"git clone -q {src} {dest}", dest.parent)
    sh(f"dvc remote modify --local ssh keyfile {key}", dest)
    return dest


@pytest.mark.parametrize("remote", ["ssh", "local"])
def test_pull_into_a_fresh_clone_recomputes_nothing(remotes, remote, sshd, tmp_path):
    src, _ = remotes
    d = fresh_clone(src, tmp_path / "clone", sshd.key)
    sh(f"dvc pull -r {remote}", d)
    outs = cached_outs(d)
    # every cached out is back: a file, or a directory for DVC's ".dir" outs (sweep_guidance's samples/)
    assert len(outs) > 100 and all((d / p).is_dir() if md5.endswith(".dir") else (d / p).is_file() for p, md5 in outs.items())
    assert json.loads(sh("dvc status --json", d).strip() or "{}") == {}
    assert "Nothing to be done" in sh("snakemake -n", d)


def test_a_corrupted_remote_object_is_caught_on_pull_and_named(remotes, sshd, tmp_path):
    src, urls = remotes
    victim = "results/train_classifier/mnist/model.safetensors"
    digest = cached_outs(src)[victim]
    obj = Path(urls["local"]) / "files/md5" / digest[:2] / digest[2:]
    obj.chmod(0o644)
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0xFF
    obj.write_bytes(bytes(data))
    try:
        d = fresh_clone(src, tmp_path / "clone", sshd.key)
        proc = run("dvc pull -r local", d)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and victim in out, out[-3000:]
        assert not (d / victim).exists()  # the corrupted bytes never reach the workspace
        assert (d / "results/train_classifier/fashion_mnist/model.safetensors").is_file()  # the rest is pulled
    finally:
        data[len(data) // 2] ^= 0xFF
        obj.write_bytes(bytes(data))
