"""The tiny DAG's stages through a real single-node Slurm (snakemake-executor-plugin-slurm), against the local run.

A representative subset runs through Slurm, not the whole DAG a second time (that would add ~10 min to
`make test`): the classifier (2 threads, workflow.cores locally), the figures that read its outputs
(a Slurm job consuming another's), and the DDPM training (a job the Slurm profile gives a GPU). Their outputs must equal the local run's byte for byte (the md5s the local
run recorded in dvc.lock; only wall-time fields may differ), DVC must record the run, and a failing job
must fail the run.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from e2e_project import clone, run, sh

pytestmark = pytest.mark.e2e
# The profile's first status check waits 40 s (right for a busy cluster); 5 s keeps the test short and
# stays below MinJobAge / 3 (genpipe.pipeline.cluster), so squeue still sees every finished job.
SLURM = "snakemake --profile workflow/profiles/slurm --slurm-init-seconds-before-status-checks 5"
RULES = ["train_classifier", "figures", "train_ddpm"]
TARGETS = ["results/figures/mnist/curves.png", "results/train_ddpm/model.safetensors"]
TIMED = re.compile(r"seconds|_per_s$|^ms_per_")  # wall-time fields of metrics.json (seconds, train_img_per_s, ms_per_sample)
TIMEOUT_S = 900  # a hang (e.g. a status command that never sees the job end) fails instead of blocking CI


def locked_md5(project: Path, stages: set[str]) -> dict[str, str]:
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    return {o["path"]: o["md5"] for s, v in lock.items() if s in stages for o in v["outs"]}


def slurm_jobs(output: str) -> dict[str, list[str]]:
    """{rule: [Slurm job ids]} from the plugin's "submitted with SLURM jobid N (log: .../rule_<rule>/...)" lines."""
    jobs: dict[str, list[str]] = {}
    for jobid, rule in re.findall(r"SLURM jobid (\d+) \(log: \S*/rule_(\w+)/", output):
        jobs.setdefault(rule, []).append(jobid)
    return jobs


def job_spec(jobid: str) -> str:
    return subprocess.run(["scontrol", "show", "job", "-o", jobid], capture_output=True, text=True, timeout=30).stdout


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()  # DVC 3's file hash


def untimed(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not TIMED.search(k)}


@pytest.fixture(scope="module")
def slurm_run(project, slurm, tmp_path_factory):
    d = clone(project, tmp_path_factory.mktemp("slurm") / "clone")
    stages = {"train_classifier@mnist", "figures@mnist", "train_ddpm"}
    expected = locked_md5(d, stages)
    out = sh(f"{SLURM} --forcerun {' '.join(RULES)} -- {' '.join(TARGETS)}", d, timeout=TIMEOUT_S)
    return d, expected, out


def test_every_job_went_through_slurm_with_its_rules_resources(slurm_run):
    d, _, out = slurm_run
    jobs = slurm_jobs(out)
    assert {r: len(j) for r, j in jobs.items()} == {r: 1 for r in RULES}, out[-3000:]
    classifier = job_spec(jobs["train_classifier"][0])
    assert "NumCPUs=2" in classifier and "Partition=debug" in classifier, classifier  # set-threads: 2, the profile's partition
    for rule in RULES:
        spec = job_spec(jobs[rule][0])
        assert "JobState=COMPLETED" in spec and re.search(r"mem=\d+M", spec), (rule, spec)
        gpu = "TresPerJob=gres:gpu:1" in spec
        assert gpu == (rule == "train_ddpm"), (rule, spec)  # a GPU only where the code uses CUDA


def test_slurm_outputs_equal_the_local_runs(slurm_run):
    d, expected, _ = slurm_run
    assert len(expected) == 5 + 3 + 4  # every output of the three jobs
    differ = {p for p, digest in expected.items() if md5(d / p) != digest}
    assert differ <= {"results/train_ddpm/metrics.json"}, differ  # only its wall-time fields may differ
    for p in differ:
        local = json.loads(sh(f"git show HEAD:{p}", d))
        assert untimed(json.loads((d / p).read_text())) == untimed(local), p


def test_dvc_records_the_slurm_run(slurm_run):
    d, _, _ = slurm_run
    status = json.loads(sh("dvc status --json", d).strip() or "{}")
    # every Slurm-run stage is recorded in dvc.lock (onsuccess); only the report, which reads the
    # metrics file with new wall times and was not a target, may be stale to DVC
    timed = {"results/train_ddpm/metrics.json"}
    assert set(status) <= {"report"}, status
    for stage, changes in status.items():
        deps = {p for change in changes for p in change.get("changed deps", {})}
        assert deps and deps <= timed and not any("changed outs" in c for c in changes), (stage, changes)


def test_a_failing_slurm_job_fails_the_run(project, slurm, tmp_path):
    d = clone(project, tmp_path / "clone")
    script = d / "scripts/figures.py"
    script.write_text('raise SystemExit("deliberate failure (test_slurm)")\n')  # a code dep: figures@mnist reruns
    proc = run(f"{SLURM} results/figures/mnist/curves.png", d, timeout=TIMEOUT_S)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "submitted with SLURM jobid" in out and "At least one job did not complete successfully" in out, out[-3000:]
    assert "deliberate failure" in (d / "logs/figures/mnist.log").read_text()
    assert not (d / "results/figures/mnist/curves.png").exists()  # no output left that looks complete
