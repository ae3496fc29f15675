"""Run one pipeline job with its output in its log; print one line when it starts and one when it ends.

    python -m genpipe.pipeline.joblog logs/<rule>/<instance>.log -- python scripts/<rule>.py ...

Snakemake runs every rule's command through this (``logged`` in workflow/rules/common.smk), so
parallel jobs do not interleave their progress bars on the terminal: the command's stdout and stderr
go, unbuffered, to the log (``tail -f`` it to watch a bar), and the terminal gets ``▶ name`` at the
start and ``✓ name  finished in …`` at the end, or ``✗ … failed`` followed by the log's last lines.
The exit status is the command's. SIGINT, SIGTERM and SIGHUP are forwarded to the command, which
runs in its own process group, so it receives each signal once. DVC runs the same command without
this wrapper, so a script run on its own still draws its bar on the terminal.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

MODULE = "genpipe.pipeline.joblog"
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
TAIL_LINES = 15
_PLUMBING = re.compile(rf"^\s*python -m {re.escape(MODULE)} \S+ -- ")


def logged(cmd: str, log: str = "{log}") -> str:
    """Shell command running ``cmd`` through this wrapper, with its output in ``log``."""
    return f"python -m {MODULE} {log} -- {cmd}"


def unlogged(cmd: str) -> str:
    """``cmd`` without the wrapper added by :func:`logged` (unchanged when it has none)."""
    return _PLUMBING.sub("", cmd, count=1)


def job_name(log: Path) -> str:
    """``rule[instance]`` from ``logs/<rule>/<instance>.log``; just ``rule`` when the two agree."""
    rule, instance = log.parent.name, log.stem
    return instance if not rule or rule in (".", instance) else f"{rule}[{instance}]"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def tail(log: Path, n: int = TAIL_LINES, window: int = 64 * 1024) -> list[str]:
    """The last ``n`` lines of ``log``; of a line redrawn with carriage returns (a bar), its last state."""
    with open(log, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - window))
        lines = f.read().decode("utf-8", "replace").split("\n")  # not splitlines(): it splits at "\r" too
    if size > window:
        lines = lines[1:]  # cut mid-line
    if lines and not lines[-1]:
        lines.pop()
    shown = []
    for line in lines:
        states = [s for s in line.split("\r") if s.strip()]
        shown.append(states[-1].rstrip() if states else "")
    return shown[-n:]


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")  # one write per message: parallel jobs never split each other's lines
    sys.stderr.flush()


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def run(log: Path, argv: Sequence[str]) -> int:
    """Run ``argv`` with stdout and stderr in ``log``; the exit status (-N: killed by signal N)."""
    name = job_name(log)
    received: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def forward(sig: int, _frame: FrameType | None) -> None:
        received.append(sig)
        if child is not None:
            child.send_signal(sig)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    log.parent.mkdir(parents=True, exist_ok=True)
    _say(f"▶ {name}  (log: {log})")
    start = time.monotonic()
    try:
        with open(log, "wb", buffering=0) as out:
            out.write(f"$ {shlex.join(argv)}\n".encode())
            try:
                child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, process_group=0,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
            except OSError as exc:
                out.write(f"cannot run {argv[0]}: {exc}\n".encode())
                rc = 127
            else:
                for sig in received:  # arrived before the child existed
                    child.send_signal(sig)
                rc = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    took = duration(time.monotonic() - start)
    if rc == 0:
        _say(f"✓ {name}  finished in {took}")
    elif received:
        _say(f"✗ {name}  interrupted after {took} ({_signal_name(received[0])}); log: {log}")
    else:
        status = f"killed by {_signal_name(-rc)}" if rc < 0 else f"exit {rc}"
        _say("\n".join([f"✗ {name}  failed after {took} ({status}); last lines of {log}:", *("    " + line for line in tail(log))]))
    return rc


def main(args: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if args is None else args)
    if len(args) < 3 or args[1] != "--":
        _say(f"usage: python -m {MODULE} LOG -- COMMAND [ARG...]")
        return 2
    rc = run(Path(args[0]), args[2:])
    if rc < 0:  # die of the same signal, so the caller sees what the command saw
        with contextlib.suppress(OSError, ValueError):  # SIGKILL has no handler to reset
            signal.signal(-rc, signal.SIG_DFL)
        os.kill(os.getpid(), -rc)
        return 128 - rc
    return rc


if __name__ == "__main__":
    sys.exit(main())
