"""A real single-node Slurm and an SSH server on 127.0.0.1, from Debian's packages (issue 17).

The tests run the pipeline through Snakemake's Slurm executor plugin and DVC's SSH remote against
these daemons, not mocks. Everything here needs root and the packages that ``make cluster-deps``
installs (``slurmctld slurmd slurm-client munge openssh-server``). A daemon that cannot start
raises :class:`DaemonError`, which names the daemon, the reason and the tail of its log.

Traps measured on these machines (Slurm 22.05, snakemake-executor-plugin-slurm 2.6.1):

* there is no slurmdbd, so ``sacct`` fails; the plugin then needs ``--slurm-status-command squeue``
  and ``MinJobAge`` >= 3 x ``--slurm-init-seconds-before-status-checks``, or it falls back to
  ``sacct`` and Snakemake waits forever, even after the jobs failed;
* the plugin's job step drops ``SLURM_CONF``, so the configuration must be ``/etc/slurm/slurm.conf``;
* ``jobacct_gather/linux`` crashed ``slurmstepd``: accounting gathering is off;
* no CPU binding (``task/none``): a job's PyTorch sees as many cores as a local job does, so it runs
  as many threads and writes the same bytes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SLURM_CONF = Path("/etc/slurm/slurm.conf")
GRES_CONF = Path("/etc/slurm/gres.conf")
MARK = "# Written by genpipe.pipeline.cluster for the tests (issue 17): a single-node Slurm."
MUNGE_PIDFILE = Path("/run/munge/munged.pid")
NODE = "localhost"
PARTITION = "debug"
MIN_JOB_AGE_S = 300  # >= 3 x the slurm profile's init_seconds_before_status_checks (40)
PACKAGES = {"munged": "munge", "slurmctld": "slurmctld", "slurmd": "slurmd", "sinfo": "slurm-client", "sshd": "openssh-server"}


class DaemonError(RuntimeError):
    """A daemon the tests need did not start; the message names it and says why."""

    def __init__(self, daemon: str, why: str, log: Path | None = None):
        tail = ""
        if log is not None and log.is_file():
            tail = "\n  last lines of " + str(log) + ":\n    " + "\n    ".join(log.read_text(errors="replace").splitlines()[-15:])
        super().__init__(f"{daemon} did not start: {why}{tail}")
        self.daemon = daemon


def _binary(name: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)
    if path is None:
        raise DaemonError(name, f"`{name}` is not installed (Debian package {PACKAGES.get(name, name)}: `make cluster-deps` as root)")
    return path


def _need_root(daemon: str) -> None:
    if os.geteuid() != 0:
        raise DaemonError(daemon, "it must be started as root (the tests start it themselves, as CI does)")


def _run(cmd: list[str], timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _wait(check, timeout: float, step: float = 0.25) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(step)
    return check()


def _kill_pidfile(pidfile: Path, name: str) -> None:
    """End the process in ``pidfile`` if it is still ``name`` (a stale pid may belong to another process by now)."""
    try:
        pid = int(pidfile.read_text().split()[0])
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError, IndexError):
        return
    if comm != name:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not _wait(lambda: not Path(f"/proc/{pid}").exists(), 10):
        os.kill(pid, signal.SIGKILL)


def real_memory_mb() -> int:
    """What slurmd reports as the node's memory (``slurmd -C``), less 5 % for the system."""
    meminfo = Path("/proc/meminfo").read_text().split()
    total_mb = int(meminfo[meminfo.index("MemTotal:") + 1]) // 1024
    return int(total_mb * 0.95)


def slurm_conf(state: Path, cpus: int, memory_mb: int, gpus: int = 1) -> str:
    """slurm.conf of one node ``localhost`` with ``cpus`` CPUs, ``memory_mb`` and ``gpus`` count-only GPUs.

    The GPUs are GRES without device files: a job asking for one is scheduled (and the request is
    checked), while the code finds no CUDA and runs on the CPU, as on this machine.
    """
    gres = f" Gres=gpu:{gpus}" if gpus else ""
    return "\n".join([
        MARK,
        "ClusterName=genpipe",
        f"SlurmctldHost={NODE}",
        "SlurmUser=root",
        "AuthType=auth/munge",
        f"StateSaveLocation={state}/slurmctld",
        f"SlurmdSpoolDir={state}/slurmd",
        f"SlurmctldPidFile={state}/slurmctld.pid",
        f"SlurmdPidFile={state}/slurmd.pid",
        f"SlurmctldLogFile={state}/slurmctld.log",
        f"SlurmdLogFile={state}/slurmd.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "ReturnToService=2",
        f"MinJobAge={MIN_JOB_AGE_S}",
        "GresTypes=gpu",
        f"NodeName={NODE} CPUs={cpus} RealMemory={memory_mb}{gres} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


def _munge_works() -> bool:
    try:
        enc = _run(["munge", "-n"])
        return enc.returncode == 0 and subprocess.run(["unmunge"], input=enc.stdout, capture_output=True, text=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def start_munge() -> bool:
    """Start munged (as the munge user) unless it answers already; True when this call started it."""
    if _munge_works():
        return False
    _need_root("munged")
    munged = _binary("munged")
    key = Path("/etc/munge/munge.key")
    if not key.is_file():
        created = _run([_binary("mungekey"), "--create", "--keyfile", str(key)])
        if created.returncode:
            raise DaemonError("munged", f"no {key} and `mungekey --create` failed: {created.stderr.strip()}")
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    started = _run(["runuser", "-u", "munge", "--", munged])
    if started.returncode:
        raise DaemonError("munged", f"exit {started.returncode}: {(started.stderr or started.stdout).strip()}", Path("/var/log/munge/munged.log"))
    if not _wait(_munge_works, 10):
        raise DaemonError("munged", "it started but `munge -n | unmunge` still fails after 10 s", Path("/var/log/munge/munged.log"))
    return True


@dataclass
class Slurm:
    """A running single-node Slurm; :meth:`stop` ends the daemons this object started."""

    state: Path
    started: list[str] = field(default_factory=list)

    def stop(self) -> None:
        for daemon in reversed(self.started):
            _kill_pidfile(MUNGE_PIDFILE if daemon == "munged" else self.state / f"{daemon}.pid", daemon)
        self.started.clear()


def node_state() -> str:
    """``sinfo``'s state of the node (``idle``, ``mix``, ``down*`` ...), or the error it printed."""
    try:
        out = _run(["sinfo", "--noheader", "--nodes", NODE, "--format", "%T"])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo failed: {exc}"
    return out.stdout.strip() if out.returncode == 0 else f"sinfo failed: {out.stderr.strip()}"


def start_slurm(state: Path = Path("/var/lib/genpipe-slurm"), timeout: float = 60) -> Slurm:
    """Write /etc/slurm/slurm.conf, start munged, ``slurmctld -i`` and ``slurmd -N localhost``.

    Returns once ``sinfo`` shows the node idle. An /etc/slurm/slurm.conf not written by this module
    is never overwritten (a machine with a real Slurm keeps its own). Daemons already answering
    with this module's configuration are reused.
    """
    _need_root("slurmctld")
    ctld, slurmd = _binary("slurmctld"), _binary("slurmd")
    _binary("sinfo")
    if SLURM_CONF.exists() and MARK not in SLURM_CONF.read_text():
        raise DaemonError("slurmctld", f"{SLURM_CONF} exists and was not written by genpipe: refusing to replace a real cluster's configuration")
    cluster = Slurm(state)
    if start_munge():
        cluster.started.append("munged")
    if node_state() in ("idle", "mixed", "allocated"):
        return cluster
    for sub in ("slurmctld", "slurmd"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    conf = slurm_conf(state, os.cpu_count() or 1, real_memory_mb())
    SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SLURM_CONF.write_text(conf)
    GRES_CONF.write_text(f"{MARK}\nNodeName={NODE} Name=gpu File=/dev/null\n")
    for daemon, cmd in (("slurmctld", [ctld, "-i"]), ("slurmd", [slurmd, "-N", NODE])):
        _kill_pidfile(state / f"{daemon}.pid", daemon)  # a stale one from an earlier run of ours
        out = _run(cmd, timeout=30)
        if out.returncode:
            raise DaemonError(daemon, f"`{' '.join(cmd)}` exited {out.returncode}: {(out.stderr or out.stdout).strip()}", state / f"{daemon}.log")
        cluster.started.append(daemon)
    if not _wait(_idle, timeout, 0.5):
        cluster.stop()
        raise DaemonError("slurmd", f"node {NODE} is not idle after {timeout:.0f} s (sinfo: {node_state()!r})", state / "slurmd.log")
    return cluster


def _idle() -> bool:
    """Whether the node is idle; a node that registered but stayed drained/down from an earlier run is resumed."""
    state = node_state()
    if state in ("drained", "draining", "down"):  # responding ("*" would mean slurmd is not answering yet)
        _run(["scontrol", "update", f"NodeName={NODE}", "State=RESUME"])
    return state == "idle"


@dataclass
class SSHServer:
    """sshd on 127.0.0.1:port accepting ``key`` for the current user; :meth:`stop` ends it."""

    port: int
    key: Path
    user: str
    pid: int

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def url(self, path: Path) -> str:
        """A DVC remote URL for ``path`` on this server."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
            return s.recv(4).startswith(b"SSH-")
        except OSError:
            return False


def start_sshd(workdir: Path, timeout: float = 15) -> SSHServer:
    """Start Debian's sshd on a free port of 127.0.0.1 with a fresh host key and client key (key auth only)."""
    _need_root("sshd")
    sshd, keygen = _binary("sshd"), _binary("ssh-keygen")
    workdir.mkdir(parents=True, exist_ok=True)
    host_key, key = workdir / "host_ed25519", workdir / "client_ed25519"
    for k in (host_key, key):
        if not k.exists():
            made = _run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(k)])
            if made.returncode:
                raise DaemonError("sshd", f"ssh-keygen failed: {made.stderr.strip()}")
    (workdir / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    port = _free_port()
    config = workdir / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"AuthorizedKeysFile {workdir}/authorized_keys",
        f"PidFile {workdir}/sshd.pid", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no", "Subsystem sftp internal-sftp", "",
    ]))
    log = workdir / "sshd.log"
    out = _run([sshd, "-f", str(config), "-E", str(log)])
    if out.returncode:
        raise DaemonError("sshd", f"exit {out.returncode}: {(out.stderr or out.stdout).strip()}", log)
    if not _wait(lambda: _listening(port), timeout):
        raise DaemonError("sshd", f"nothing answers SSH on 127.0.0.1:{port} after {timeout:.0f} s", log)
    pid = int((workdir / "sshd.pid").read_text().split()[0])
    import pwd

    return SSHServer(port, key, pwd.getpwuid(os.geteuid()).pw_name, pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start the single-node Slurm the tests and `make cluster` use.")
    parser.add_argument("command", choices=["slurm", "stop-slurm"])
    parser.add_argument("--state", type=Path, default=Path("/var/lib/genpipe-slurm"))
    args = parser.parse_args(argv)
    try:
        if args.command == "slurm":
            start_slurm(args.state)
            print(f"slurm: node {NODE} {node_state()} (partition {PARTITION}, {SLURM_CONF})")
        else:
            Slurm(args.state, ["slurmctld", "slurmd"]).stop()
    except DaemonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
