"""The Slurm profile, the rules' resources and the single-node Slurm configuration (issue 17)."""

import re

import pytest
import yaml

from genpipe.pipeline import cluster


def rule_blocks(root) -> dict[str, str]:
    blocks = {}
    for smk in (root / "workflow/rules").glob("*.smk"):
        for chunk in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name, body = chunk.split(":", 1)
            blocks[name] = body
    return blocks


def test_every_rule_declares_mem_mb_and_runtime(root):
    blocks = rule_blocks(root)
    assert len(blocks) >= 27
    for name, body in blocks.items():
        mem = re.search(r"^\s+mem_mb=(\d+),$", body, re.M)
        runtime = re.search(r"^\s+runtime=(\d+),$", body, re.M)
        assert mem and runtime, f"rule {name} has no mem_mb / runtime resources"
        assert 512 <= int(mem.group(1)) <= 16384 and 5 <= int(runtime.group(1)) <= 24 * 60, name


def test_slurm_profile_avoids_the_known_hangs(root):
    profile = yaml.safe_load((root / "workflow/profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["jobs"] > 0 and profile["latency-wait"] >= 30
    assert profile["default-resources"]["slurm_partition"]
    # without slurmdbd, sacct fails and the plugin's sacct status makes Snakemake wait forever
    assert profile["slurm-status-command"] == "squeue"
    assert cluster.MIN_JOB_AGE_S >= 3 * profile["slurm-init-seconds-before-status-checks"]
    assert profile["set-threads"] == {"train_classifier": 2}  # the committed run's thread count
    blocks = rule_blocks(root)
    gpu = {rule for rule, res in profile["set-resources"].items() if res.get("gpu")}
    assert gpu == {"train_ddpm", "sample_ddpm", "train_vit"} and gpu <= set(blocks)  # the stages whose code moves to CUDA


def test_test_node_memory_covers_every_rule(root):
    largest = max(int(m) for body in rule_blocks(root).values() for m in re.findall(r"mem_mb=(\d+)", body))
    assert cluster.real_memory_mb() >= largest, "the test node's RealMemory must cover the largest mem_mb"


def test_slurm_conf_is_a_single_node_without_accounting(tmp_path):
    conf = dict(line.split("=", 1) for line in cluster.slurm_conf(tmp_path, 2, 20000).splitlines() if "=" in line and " " not in line.split("=")[0])
    assert conf["JobAcctGatherType"] == "jobacct_gather/none"  # jobacct_gather/linux crashed slurmstepd here
    assert conf["AccountingStorageType"] == "accounting_storage/none" and conf["TaskPlugin"] == "task/none"
    assert int(conf["MinJobAge"]) == cluster.MIN_JOB_AGE_S and conf["StateSaveLocation"] == f"{tmp_path}/slurmctld"
    assert "NodeName=localhost CPUs=2 RealMemory=20000 Gres=gpu:1 State=UNKNOWN" in cluster.slurm_conf(tmp_path, 2, 20000)


def test_a_missing_daemon_is_named_with_its_package(monkeypatch):
    monkeypatch.setattr(cluster.shutil, "which", lambda name: None)
    monkeypatch.setattr(cluster.os, "access", lambda *a: False)
    with pytest.raises(cluster.DaemonError, match=r"slurmctld did not start: `slurmctld` is not installed \(Debian package slurmctld"):
        cluster._binary("slurmctld")


def test_a_foreign_slurm_conf_is_never_replaced(monkeypatch, tmp_path):
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=real\n")
    monkeypatch.setattr(cluster, "SLURM_CONF", conf)
    monkeypatch.setattr(cluster, "_binary", lambda name: name)
    monkeypatch.setattr(cluster.os, "geteuid", lambda: 0)
    with pytest.raises(cluster.DaemonError, match="not written by genpipe"):
        cluster.start_slurm(tmp_path / "state")
    assert conf.read_text() == "ClusterName=real\n"


def test_a_stale_pidfile_never_ends_another_process(tmp_path):
    import os

    pidfile = tmp_path / "slurmd.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # this test's own process, not a slurmd
    cluster._kill_pidfile(pidfile, "slurmd")  # must leave it alone
    assert os.path.exists(f"/proc/{os.getpid()}")
