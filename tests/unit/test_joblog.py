"""genpipe.pipeline.joblog: a job's output goes to its log, the terminal gets one start and one end line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from genpipe.pipeline import dagcheck
from genpipe.pipeline.joblog import duration, job_name, logged, tail, unlogged

ROOT = Path(__file__).resolve().parents[2]


def wrapper(log: Path, code: str, **popen) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "genpipe.pipeline.joblog", str(log), "--", sys.executable, "-c", code]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def run(log: Path, code: str) -> tuple[int, str, str]:
    proc = wrapper(log, code)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_output_goes_to_the_log_and_the_terminal_gets_one_start_and_one_finish_line(tmp_path):
    log = tmp_path / "logs" / "train_classifier" / "mnist.log"
    rc, out, err = run(log, "import sys; print('to stdout'); print('to stderr', file=sys.stderr); sys.stderr.write('\\r 50%\\r100%\\n')")
    assert rc == 0 and out == ""
    assert err.splitlines() == [f"▶ train_classifier[mnist]  (log: {log})", err.splitlines()[1]]
    assert re.fullmatch(r"✓ train_classifier\[mnist\]  finished in \d+\.\d s", err.splitlines()[1])
    text = log.read_bytes().decode()
    assert text.startswith(f"$ {sys.executable} -c ") and "to stdout\n" in text and "to stderr\n" in text
    assert "\r 50%\r100%\n" in text  # a bar is written as the script draws it


def test_failure_propagates_the_exit_status_and_shows_the_log_tail(tmp_path):
    log = tmp_path / "logs" / "report" / "report.log"
    rc, _, err = run(log, "import sys\nfor i in range(30): print(f'line {i}')\nsys.stderr.write('\\r 10%\\r 70%\\n'); sys.exit(3)")
    assert rc == 3
    lines = err.splitlines()
    assert lines[0] == f"▶ report  (log: {log})"
    assert re.fullmatch(rf"✗ report  failed after \d+\.\d s \(exit 3\); last lines of {re.escape(str(log))}:", lines[1])
    assert lines[2:] == [f"    line {i}" for i in range(16, 30)] + ["     70%"]  # 15 lines, a bar's last state


def test_a_command_killed_by_a_signal_kills_the_wrapper_with_it(tmp_path):
    rc, _, err = run(tmp_path / "x.log", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert rc == -signal.SIGKILL
    assert "(killed by SIGKILL)" in err


def test_a_missing_command_fails_with_127(tmp_path):
    argv = [sys.executable, "-m", "genpipe.pipeline.joblog", str(tmp_path / "x.log"), "--", str(tmp_path / "no-such-program")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 127 and "(exit 127)" in proc.stderr and "cannot run" in proc.stderr


def test_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "genpipe.pipeline.joblog", "x.log", "python"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "usage:" in proc.stderr


# The command counts the signals it receives, then exits with 10 + that count.
COUNTING = """
import signal, sys, time
got = []
signal.signal(signal.SIGINT, lambda s, f: got.append(s))
signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
print('ready', flush=True)
deadline = time.monotonic() + 20
while not got and time.monotonic() < deadline:
    time.sleep(0.02)
time.sleep(0.5)  # a second copy of the signal would arrive meanwhile
print('got', got, flush=True)
sys.exit(10 + len(got))
"""


def _started(log: Path) -> None:
    deadline = time.monotonic() + 30
    while not (log.exists() and "\nready\n" in log.read_text()):  # the command line, first, holds "ready" too
        assert time.monotonic() < deadline, "the command did not start"
        time.sleep(0.02)


def test_sigterm_is_forwarded_to_the_command(tmp_path):
    log = tmp_path / "x.log"
    proc = wrapper(log, COUNTING)
    _started(log)
    proc.send_signal(signal.SIGTERM)  # what a scheduler sends to the job's process only
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 11 and f"got [{int(signal.SIGTERM)}]" in log.read_text()
    assert "interrupted after" in err and "(SIGTERM)" in err


def test_ctrl_c_reaches_the_command_once(tmp_path):
    log = tmp_path / "x.log"
    proc = wrapper(log, COUNTING, start_new_session=True)
    _started(log)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground process group
    proc.communicate(timeout=60)
    assert proc.returncode == 11 and f"got [{int(signal.SIGINT)}]" in log.read_text()


def test_names_and_durations():
    assert job_name(Path("logs/train_ddpm/train_ddpm.log")) == "train_ddpm"
    assert job_name(Path("logs/download/mnist_MNIST.log")) == "download[mnist_MNIST]"
    assert job_name(Path("x.log")) == "x"
    assert [duration(s) for s in (4.04, 684.2, 7300)] == ["4.0 s", "11 min 24 s", "2 h 1 min"]


def test_tail_of_a_missing_trailing_newline(tmp_path):
    (tmp_path / "x.log").write_bytes(b"a\nb\r\n\rbar 1\rbar 2")
    assert tail(tmp_path / "x.log", n=2) == ["b", "bar 2"]


def test_dagcheck_strips_the_log_plumbing():
    cmd = "python scripts/download.py --dataset {wildcards.dataset} --out data/raw/{wildcards.dataset}"
    assert logged(cmd) == f"python -m genpipe.pipeline.joblog {{log}} -- {cmd}"
    assert unlogged(logged(cmd, "logs/download/mnist_MNIST.log")) == cmd
    assert unlogged(cmd) == cmd  # a command without the plumbing is compared as it is
    assert dagcheck.unlogged is unlogged  # what snakemake_steps() applies to each job's shell command


def test_every_rule_runs_through_the_wrapper():
    rules = sorted((ROOT / "workflow" / "rules").glob("*.smk"))
    shells = [m for p in rules for m in re.findall(r"\n    shell:\n        (.+)", p.read_text())]
    n_rules = sum(len(re.findall(r"^rule \w+:", p.read_text(), re.M)) for p in rules)  # `rule all` is in the Snakefile
    assert len(shells) == n_rules > 20 and all(s.startswith('logged("python scripts/') for s in shells), shells
    assert not any("tee {log}" in p.read_text() for p in rules)


def test_profile_hides_snakemake_rule_blocks():
    assert "\nquiet: [rules, host]\n" in (ROOT / "workflow/profiles/default/config.yaml").read_text()
