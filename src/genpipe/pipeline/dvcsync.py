"""Keep Snakemake and DVC agreeing about what is up to date (DESIGN.md, contract 4).

* After Snakemake succeeds, :func:`commit` records what it produced in ``dvc.lock``
  (``dvc commit --force`` of every stage whose outputs this run wrote), so ``dvc status`` is
  clean and ``dvc repro`` does nothing.
* Before Snakemake builds its DAG, :func:`sync_snakemake` catches up with what DVC did since
  (``dvc repro``, ``dvc checkout``, ``dvc pull``: fresh, arbitrary mtimes and params Snakemake has
  not seen). When DVC verifies every stage by content hash, ``snakemake --touch`` records that
  (mtimes in DAG order and params metadata). Otherwise only the verified stages' outputs are made
  newer than their inputs, in topological order; the stages DVC reports as changed stay stale.

The check that decides whether DVC must be asked is cheap (dvc.lock's sha256 against the one
recorded at the last sync, and the mtimes of dvc.lock's paths), so most runs never import DVC.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class LockedStage:
    name: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]


def _files(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]


def _mtimes(paths: tuple[str, ...], root: Path) -> list[float]:
    return [f.stat().st_mtime for p in paths if (root / p).exists() for f in _files(root / p)]


def locked_stages(root: str | Path = ".") -> list[LockedStage]:
    """Stages recorded in dvc.lock, in topological order (producers before consumers)."""
    lock = Path(root) / "dvc.lock"
    if not lock.is_file():
        return []
    raw = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    stages = {
        name: LockedStage(name, tuple(d["path"] for d in s.get("deps", [])), tuple(o["path"] for o in s.get("outs", [])))
        for name, s in raw.items()
    }
    producer = {out: s.name for s in stages.values() for out in s.outs}
    ordered: list[LockedStage] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep in stages[name].deps:  # a dep is an output, or a directory holding outputs
            for out, stage in producer.items():
                if out == dep or out.startswith(dep + "/"):
                    visit(stage)
        ordered.append(stages[name])

    for name in sorted(stages):
        visit(name)
    return ordered


def _is_stale_by_mtime(stage: LockedStage, root: Path) -> bool:
    deps, outs = _mtimes(stage.deps, root), _mtimes(stage.outs, root)
    return bool(deps and outs) and max(deps) >= min(outs)


def _dvc_changed_stages(root: Path) -> set[str]:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {name.rsplit(":", 1)[-1] for name in repo.status()}


STAMP = Path(".snakemake") / "genpipe-dvc-lock.sha256"  # dvc.lock as of the last sync
NO_SYNC = "GENPIPE_NO_SYNC"  # set for the nested `snakemake --touch`


def _lock_digest(root: Path) -> str:
    lock = root / "dvc.lock"
    return hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else ""


def mark_synced(root: str | Path = ".") -> None:
    """Record that Snakemake's view now matches dvc.lock."""
    root = Path(root)
    (root / STAMP).parent.mkdir(parents=True, exist_ok=True)
    (root / STAMP).write_text(_lock_digest(root))


def restore_mtimes(root: Path, stages: list[LockedStage], changed: set[str]) -> list[str]:
    """Make outputs of stages not in ``changed`` newer than their inputs; return those touched."""
    touched = []
    for stage in stages:  # topological: touching a producer updates its consumers' input times
        if stage.name in changed or not _is_stale_by_mtime(stage, root):
            continue
        new = max(_mtimes(stage.deps, root)) + 1.0
        for p in stage.outs:
            for f in _files(root / p):
                os.utime(f, (new, new))
        touched.append(stage.name)
    return touched


def sync_snakemake(root: str | Path = ".", log=print) -> str:
    """Bring Snakemake's view (mtimes, params records) in line with DVC's; return what was done."""
    root = Path(root)
    if os.environ.get(NO_SYNC) or not (root / ".dvc").is_dir():
        return "skipped"
    stages = locked_stages(root)
    stamp = root / STAMP
    lock_moved = stamp.is_file() and stamp.read_text() != _lock_digest(root)
    if not stages or not (lock_moved or any(_is_stale_by_mtime(s, root) for s in stages)):
        return "in sync"
    changed = _dvc_changed_stages(root)
    if not changed:
        env = {**os.environ, NO_SYNC: "1"}
        subprocess.run([sys.executable, "-m", "snakemake", "--touch", "--no-hooks", "--cores", "1", "--quiet", "all"], cwd=root, env=env, check=True)
        mark_synced(root)
        log("genpipe: DVC verified every stage; recorded them as up to date for Snakemake (snakemake --touch)")
        return "touched all"
    touched = restore_mtimes(root, stages, changed)
    if touched:
        log(f"genpipe: outputs of {len(touched)} DVC-verified stage(s) made newer than their inputs: {', '.join(touched)}")
    return f"restored {len(touched)}"


def commit(since: float, root: str | Path = ".", log=print) -> list[str]:
    """``dvc commit --force`` every stage whose outputs all exist and were written after ``since``."""
    root = Path(root)
    if not (root / ".dvc").is_dir():
        log("genpipe: no .dvc directory; skipping dvc commit")
        return []
    from genpipe.pipeline.dagcheck import dvc_steps

    done = []
    for step in dvc_steps(root):
        if step.outs and all((root / o).exists() for o in step.outs) and min(_mtimes(tuple(step.outs), root)) >= since:
            done.append(step.instance)
    if done:
        subprocess.run([sys.executable, "-m", "dvc", "commit", "--force", "--quiet", *done], cwd=root, check=True)
        log(f"genpipe: recorded {len(done)} stage(s) in dvc.lock: {', '.join(done)}")
        stages = locked_stages(root)
        restore_mtimes(root, stages, {s.name for s in stages} - set(done))  # in case DVC relinked outputs
    mark_synced(root)
    return done


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Snakemake <-> DVC agreement helpers")
    ap.add_argument("action", choices=["sync", "commit"])
    ap.add_argument("--since", type=float, default=0.0, help="commit: only stages whose outputs are newer (epoch seconds)")
    a = ap.parse_args()
    print(sync_snakemake()) if a.action == "sync" else commit(a.since)
