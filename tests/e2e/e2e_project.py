"""The e2e project: the real workflow copied into a temporary git + DVC project with the test profile's tiny params."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from genpipe.pipeline.testprofile import tiny_params

BIN = Path(sys.executable).parent
GIT_IDENTITY = {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER") for what, value in (("NAME", "genpipe e2e"), ("EMAIL", "e2e@genpipe.invalid"))}
BUILT = "results"  # git tag of the project's state right after its first Snakemake run


def run(cmd: str, cwd: Path, timeout: float | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONDONTWRITEBYTECODE": "1", **GIT_IDENTITY}
    return subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def sh(cmd: str, cwd: Path, timeout: float | None = None) -> str:
    """Run ``cmd`` in ``cwd``; fail the test with its output's tail when it exits non-zero."""
    proc = run(cmd, cwd, timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"`{cmd}` failed ({proc.returncode}):\n{out[-4000:]}"
    return out


def build(root: Path, d: Path) -> Path:
    """Copy the workflow into ``d`` with the tiny params, run Snakemake (2 cores) and commit + tag the result."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".snakemake")
    for sub in ("workflow", "scripts", "src"):
        shutil.copytree(root / sub, d / sub, ignore=ignore)
    for f in ("dvc.yaml", ".gitignore", "environment.yml"):
        shutil.copy(root / f, d / f)
    (d / "params.yaml").write_text(yaml.safe_dump(tiny_params(root), sort_keys=False))
    sh("git init -q -b main && dvc init -q && dvc config core.analytics false && git add -A && git commit -qm init", d)
    sh("snakemake --cores 2", d)
    sh(f"git add -A && git commit -qm results && git tag {BUILT}", d)
    return d


def clone(project: Path, dest: Path, checkout: bool = True) -> Path:
    """A git clone of ``project`` at its built state sharing its DVC cache; with ``checkout``, the outputs too."""
    sh(f"git -c advice.detachedHead=false clone -q --branch {BUILT} {project} {dest}", dest.parent)
    sh(f"dvc cache dir --local {project / '.dvc/cache'}" + (" && dvc checkout --quiet" if checkout else ""), dest)
    return dest
