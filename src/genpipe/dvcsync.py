"""Keep Snakemake and DVC agreeing about what is up to date (DESIGN.md, contract 4).

* After Snakemake succeeds, :func:`commit` records what it produced in ``dvc.lock``
  (``dvc commit --force`` of every stage whose outputs this run wrote), so ``dvc status`` is
  clean and ``dvc repro`` does nothing.
* Before Snakemake builds its DAG, :func:`restore_mtimes` repairs output times after
  ``dvc checkout`` / ``dvc pull`` (which give files fresh, arbitrary mtimes): for every stage that
  DVC verifies by content hash to be up to date, its outputs are made newer than its inputs, in
  topological order. Stages DVC reports as changed are left alone, so Snakemake still reruns them.

The cheap check (mtimes from dvc.lock's paths) runs every time; DVC itself is only consulted when
some stage's outputs are older than its inputs.
"""

from __future__ import annotations

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
        for dep in stages[name].deps:
            if dep in producer:
                visit(producer[dep])
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
        return set(repo.status())


def restore_mtimes(root: str | Path = ".", log=print) -> list[str]:
    """Make outputs of DVC-verified stages newer than their inputs; return the stages touched."""
    root = Path(root)
    stages = locked_stages(root)
    if not (root / ".dvc").is_dir() or not any(_is_stale_by_mtime(s, root) for s in stages):
        return []
    changed = _dvc_changed_stages(root)
    touched = []
    for stage in stages:  # topological: touching a producer updates its consumers' input times
        if stage.name in changed or not _is_stale_by_mtime(stage, root):
            continue
        new = max(_mtimes(stage.deps, root)) + 1.0
        for p in stage.outs:
            for f in _files(root / p):
                os.utime(f, (new, new))
        touched.append(stage.name)
    if touched:
        log(f"genpipe: outputs of {len(touched)} DVC-verified stage(s) made newer than their inputs: {', '.join(touched)}")
    return touched


def _declared_stages(root: Path) -> list[LockedStage]:
    """Stages as dvc.yaml declares them (foreach expanded), with their output paths."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return [
            LockedStage(s.addressing, tuple(str(d.def_path) for d in s.deps), tuple(str(o.def_path) for o in s.outs))
            for s in repo.index.stages
            if s.cmd
        ]


def commit(since: float, root: str | Path = ".", log=print) -> list[str]:
    """``dvc commit --force`` every stage whose outputs all exist and were written after ``since``."""
    root = Path(root)
    if not (root / ".dvc").is_dir():
        log("genpipe: no .dvc directory; skipping dvc commit")
        return []
    done = []
    for stage in _declared_stages(root):
        times = _mtimes(stage.outs, root)
        if stage.outs and all((root / o).exists() for o in stage.outs) and min(times) >= since:
            done.append(stage.name)
    if done:
        subprocess.run([sys.executable, "-m", "dvc", "commit", "--force", "--quiet", *done], cwd=root, check=True)
        log(f"genpipe: recorded {len(done)} stage(s) in dvc.lock: {', '.join(done)}")
        restore_mtimes(root, log)
    return done


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Snakemake <-> DVC agreement helpers")
    ap.add_argument("action", choices=["restore-mtimes", "commit"])
    ap.add_argument("--since", type=float, default=0.0, help="commit: only stages whose outputs are newer (epoch seconds)")
    a = ap.parse_args()
    restore_mtimes() if a.action == "restore-mtimes" else commit(a.since)
