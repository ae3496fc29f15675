"""Wall time and peak RSS of every rule of a finished run, and the `resources:` they suggest (issue 17).

Wall times come from the run's Snakemake metadata (`.snakemake/metadata`: start and end of each
job). Peak RSS is measured by running each rule's longest instance again, in that project (run it
in a COPY: outputs are rewritten), sampling the RSS of the job's process tree every 0.2 s, for at
most --cap seconds (a capped stage's peak is the one of its first --cap seconds: data, model and
optimiser loaded, training under way). Usage:

    python benchmarks/stage_resources.py /tmp/copy-of-a-full-run --cap 60 > docs/stage_resources.tsv

Suggested `mem_mb` = 1.5 x peak + 256 MB, rounded up to 256 MB; `runtime` (minutes) = 2 x wall + 5.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import psutil

from genpipe.pipeline.dagcheck import dvc_steps


def job_records(project: Path):
    """(rule, start time, wall seconds, output path) of every finished job output in Snakemake's metadata."""
    for f in (project / ".snakemake/metadata").iterdir():
        try:
            meta = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("starttime") and meta.get("endtime"):
            yield meta["rule"], meta["starttime"], meta["endtime"] - meta["starttime"], base64.b64decode(f.name).decode()


def job_wall_times(project: Path) -> dict[str, float]:
    """Longest wall time (s) of each rule's jobs, from Snakemake's per-output metadata."""
    jobs = {(rule, start): seconds for rule, start, seconds, _ in job_records(project)}
    longest: dict[str, float] = defaultdict(float)
    for (rule, _), seconds in jobs.items():
        longest[rule] = max(longest[rule], seconds)
    return dict(longest)


def longest_instances(project: Path) -> dict[str, str]:
    """rule -> the output path of its instance that ran longest (to find its DVC command)."""
    best: dict[str, tuple[float, str]] = {}
    for rule, _, seconds, path in job_records(project):
        if seconds > best.get(rule, (-1.0, ""))[0]:
            best[rule] = (seconds, path)
    return {rule: path for rule, (_, path) in best.items()}


def peak_rss_mb(cmd: str, cwd: Path, cap_s: float) -> tuple[float, float, bool]:
    """(peak RSS of the process tree in MB, seconds run, whether it finished within cap_s)."""
    proc = subprocess.Popen(cmd, shell=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    root, peak, t0 = psutil.Process(proc.pid), 0.0, time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < cap_s:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20)
        except psutil.Error:
            pass
        time.sleep(0.2)
    finished = proc.poll() is not None
    if not finished:
        os.killpg(proc.pid, 9)
        proc.wait()
    return peak, time.monotonic() - t0, finished


def suggest(peak_mb: float, wall_s: float) -> tuple[int, int]:
    return 256 * math.ceil((1.5 * peak_mb + 256) / 256), math.ceil(2 * wall_s / 60 + 5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("project", type=Path)
    ap.add_argument("--cap", type=float, default=60.0, help="seconds each stage may run while its RSS is sampled")
    ap.add_argument("--rules", nargs="*", help="only these rules")
    args = ap.parse_args()
    walls, instances = job_wall_times(args.project), longest_instances(args.project)
    steps = {o: s for s in dvc_steps(args.project) for o in s.outs}
    print("rule\twall_s\tpeak_rss_mb\tmeasured_s\tfinished\tmem_mb\truntime_min")
    for rule in sorted(walls):
        if args.rules and rule not in args.rules or instances[rule] not in steps:
            continue
        peak, ran, finished = peak_rss_mb(steps[instances[rule]].cmd, args.project, args.cap)
        mem_mb, runtime = suggest(peak, walls[rule])
        print(f"{rule}\t{walls[rule]:.0f}\t{peak:.0f}\t{ran:.0f}\t{finished}\t{mem_mb}\t{runtime}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
