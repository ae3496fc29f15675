"""Check that the Snakemake workflow and dvc.yaml describe the same DAG (DESIGN.md, contract 1).

Every DVC stage (``foreach`` expanded) must match the Snakemake job that writes the same outputs:
same step name, same command (Snakemake's ``2>&1 | tee {log}`` plumbing aside), same inputs as
deps, and the same params values. ``python -m genpipe.dagcheck`` prints every difference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_LOG_SUFFIX = re.compile(r"\s*2>&1 \| tee \S+\s*$")


@dataclass(frozen=True)
class Step:
    name: str  # rule / stage name without the foreach key
    instance: str  # "train_classifier@mnist" style address
    cmd: str
    deps: frozenset[str]
    outs: frozenset[str]
    params: tuple[str, ...]  # params values, canonical YAML, sorted


def _canon(values: list[Any]) -> tuple[str, ...]:
    return tuple(sorted(yaml.safe_dump(v, sort_keys=True) for v in values))


def _lookup(doc: dict[str, Any], dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        node = node[part]
    return node


def dvc_steps(root: str | Path = ".") -> list[Step]:
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    root = Path(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    steps = []
    with Repo(str(root)) as repo:
        for s in repo.index.stages:
            keys = [k for d in s.deps if isinstance(d, ParamsDependency) for k in (d.params or [])]
            files = [str(d.def_path) for d in s.deps if not isinstance(d, ParamsDependency)]
            instance = s.addressing.rsplit(":", 1)[-1]  # "dvc.yaml:" prefix when opened from elsewhere
            steps.append(
                Step(
                    name=instance.split("@")[0],
                    instance=instance,
                    cmd=" ".join(s.cmd.split()),
                    deps=frozenset(files),
                    outs=frozenset(str(o.def_path) for o in s.outs),
                    params=_canon([_lookup(params, k) for k in keys]),
                )
            )
    return steps


def snakemake_steps(root: str | Path = ".") -> list[Step]:
    """Jobs of the Snakemake DAG (forceall), via Snakemake's Python API."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings

    root = Path(root).resolve()
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(),
            snakefile=root / "workflow" / "Snakefile",
            workdir=root,
        )
        wf.dag(dag_settings=DAGSettings(forceall=True))
        workflow = wf._workflow  # no public API lists expanded jobs; Snakemake is pinned
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        steps = []
        for job in workflow.dag.jobs:
            if not job.shellcmd:  # target rules such as `all`
                continue
            wc = "-".join(str(v) for k, v in job.wildcards.items() if k == "dataset" or len(job.wildcards) == 1)
            steps.append(
                Step(
                    name=job.rule.name,
                    instance=f"{job.rule.name}@{wc}" if wc else job.rule.name,
                    cmd=" ".join(_LOG_SUFFIX.sub("", job.shellcmd).split()),
                    deps=frozenset(map(str, job.input)),
                    outs=frozenset(map(str, job.output)),
                    params=_canon([v for _, v in job.params.items()]),
                )
            )
    return steps


def compare(dvc: list[Step], smk: list[Step]) -> list[str]:
    """Human-readable differences between the two DAGs (empty when they agree)."""
    problems = []
    by_outs = {s.outs: s for s in smk}
    for d in dvc:
        s = by_outs.pop(d.outs, None)
        if s is None:
            problems.append(f"DVC stage {d.instance}: no Snakemake job writes exactly {sorted(d.outs)}")
            continue
        if s.name != d.name:
            problems.append(f"DVC stage {d.instance} is Snakemake rule {s.name!r}: names differ")
        if s.cmd != d.cmd:
            problems.append(f"{d.instance}: commands differ\n  dvc:       {d.cmd}\n  snakemake: {s.cmd}")
        if s.deps != d.deps:
            problems.append(f"{d.instance}: deps only in dvc.yaml {sorted(d.deps - s.deps)}, only in Snakemake {sorted(s.deps - d.deps)}")
        if s.params != d.params:
            problems.append(f"{d.instance}: params differ\n  dvc:       {d.params}\n  snakemake: {s.params}")
    problems += [f"Snakemake job {s.instance} has no DVC stage (outputs {sorted(s.outs)})" for s in by_outs.values()]
    return problems


if __name__ == "__main__":
    import sys

    found = compare(dvc_steps(), snakemake_steps())
    print("\n".join(found) or "workflow/ and dvc.yaml agree")
    sys.exit(1 if found else 0)
