"""Session fixtures of the e2e tests: the built tiny project, a single-node Slurm and an SSH server.

The daemons come from Debian's packages (`make cluster-deps`). One that cannot start fails every test
that needs it with genpipe.pipeline.cluster.DaemonError, which names the daemon and why: never a skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e_project import build
from genpipe.pipeline.cluster import SSHServer, start_slurm, start_sshd


@pytest.fixture(scope="session")
def project(tmp_path_factory, root) -> Path:
    return build(root, tmp_path_factory.mktemp("genpipe"))


@pytest.fixture(scope="session")
def slurm():
    cluster = start_slurm()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory) -> SSHServer:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()
