"""Check that the Snakemake workflow and dvc.yaml describe the same DAG (DESIGN.md, contract 1).

Every DVC stage (``foreach`` expanded) must match the Snakemake job that writes the same outputs:
same step name, same command (Snakemake's log plumbing, ``genpipe.pipeline.joblog``, aside), same inputs as
deps, and the same params values. ``python -m genpipe.pipeline.dagcheck`` prints every difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from genpipe.pipeline.joblog import unlogged


@dataclass(frozen=True)
class Step:
    name: str  # rule / stage name without the foreach key
    instance: str  # "train_classifier@mnist" style address
    cmd: str
    deps: frozenset[str]
    outs: frozenset[str]
    params: str  # {dotted key: value} as canonical YAML


def _canon(values: dict[str, Any]) -> str:
    return yaml.safe_dump(values, sort_keys=True)


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
                    params=_canon({k: _lookup(params, k) for k in keys}),
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
            keyed = {}
            for name, values in job.params.items():  # params.tracked = stage_params(...): {dotted key: value}
                if name == "tracked":
                    keyed.update(values)
            wc = "-".join(str(v) for _, v in job.wildcards.items())
            steps.append(
                Step(
                    name=job.rule.name,
                    instance=f"{job.rule.name}@{wc}" if wc else job.rule.name,
                    cmd=" ".join(unlogged(job.shellcmd).split()),
                    deps=frozenset(map(str, job.input)),
                    outs=frozenset(map(str, job.output)),
                    params=_canon(keyed),
                )
            )
    return steps


def _as_dvc_deps(smk_deps: frozenset[str], dvc_deps: frozenset[str], produced: set[str]) -> frozenset[str]:
    """Snakemake lists every file; DVC may depend on a directory of another stage's outputs
    (e.g. every run of a matrix). Files under such a directory count as that directory."""
    dirs = [d for d in dvc_deps if any(p.startswith(d + "/") for p in produced)]
    return frozenset(next((d for d in dirs if f.startswith(d + "/")), f) for f in smk_deps)


def compare(dvc: list[Step], smk: list[Step]) -> list[str]:
    """Human-readable differences between the two DAGs (empty when they agree)."""
    problems = []
    by_outs = {s.outs: s for s in smk}
    produced = {o for d in dvc for o in d.outs}
    for d in dvc:
        s = by_outs.pop(d.outs, None)
        if s is None:
            problems.append(f"DVC stage {d.instance}: no Snakemake job writes exactly {sorted(d.outs)}")
            continue
        if s.name != d.name:
            problems.append(f"DVC stage {d.instance} is Snakemake rule {s.name!r}: names differ")
        if s.cmd != d.cmd:
            problems.append(f"{d.instance}: commands differ\n  dvc:       {d.cmd}\n  snakemake: {s.cmd}")
        smk_deps = _as_dvc_deps(s.deps, d.deps, produced)
        if smk_deps != d.deps:
            problems.append(f"{d.instance}: deps only in dvc.yaml {sorted(d.deps - smk_deps)}, only in Snakemake {sorted(smk_deps - d.deps)}")
        if s.params != d.params:
            problems.append(f"{d.instance}: params differ\n  dvc:       {d.params}\n  snakemake: {s.params}")
    problems += [f"Snakemake job {s.instance} has no DVC stage (outputs {sorted(s.outs)})" for s in by_outs.values()]
    return problems


if __name__ == "__main__":
    import sys

    found = compare(dvc_steps(), snakemake_steps())
    print("\n".join(found) or "workflow/ and dvc.yaml agree")
    sys.exit(1 if found else 0)
