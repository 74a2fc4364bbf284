"""Resource limits given at create: shown by inspect as dockerd shows them, and enforced
by the container's cgroups (memory and the OOM killer, pids, CFS quota, cpuset, shm,
soft limit, ulimits)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.daemon import EssaimDaemon

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def cgroup_file(daemon: EssaimDaemon, controller: str, cid: str, name: str) -> Path:
    return Path("/sys/fs/cgroup") / controller / daemon.cgroup_parent / cid / name


def run_detached(daemon: EssaimDaemon, *args: str) -> str:
    result = daemon.docker("run", "-d", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def host_config(daemon: EssaimDaemon, cid: str) -> dict[str, object]:
    result = daemon.docker("inspect", "-f", "{{json .HostConfig}}", cid)
    assert result.returncode == 0, result.stderr
    config: dict[str, object] = json.loads(result.stdout)
    return config


def test_a_memory_hog_is_oom_killed(daemon: EssaimDaemon) -> None:
    name = f"hog-{time.monotonic_ns()}"
    # busybox tail keeps a line without newline in memory: /dev/zero never ends one.
    result = daemon.docker("run", "--name", name, "-m", "32m", "busybox", "tail", "/dev/zero")
    assert result.returncode == 137
    state = json.loads(daemon.docker("inspect", "-f", "{{json .State}}", name).stdout)
    assert state["OOMKilled"] is True
    assert state["ExitCode"] == 137


def test_a_clean_exit_is_not_oom_killed(daemon: EssaimDaemon) -> None:
    name = f"lean-{time.monotonic_ns()}"
    assert daemon.docker("run", "--name", name, "-m", "32m", "busybox", "true").returncode == 0
    assert daemon.docker("inspect", "-f", "{{.State.OOMKilled}}", name).stdout.strip() == "false"


def test_memory_limits_in_inspect_and_cgroup(daemon: EssaimDaemon) -> None:
    cid = run_detached(
        daemon, "-m", "32m", "--memory-reservation", "20m", "--oom-kill-disable",
        "busybox", "sleep", "60",
    )  # fmt: skip
    config = host_config(daemon, cid)
    assert config["Memory"] == 32 * MiB
    assert config["MemorySwap"] == 64 * MiB  # dockerd's default: as much swap again
    assert config["MemoryReservation"] == 20 * MiB
    assert config["OomKillDisable"] is True
    assert (
        cgroup_file(daemon, "memory", cid, "memory.limit_in_bytes").read_text() == f"{32 * MiB}\n"
    )
    soft = cgroup_file(daemon, "memory", cid, "memory.soft_limit_in_bytes").read_text()
    assert soft == f"{20 * MiB}\n"
    oom_control = cgroup_file(daemon, "memory", cid, "memory.oom_control").read_text()
    assert "oom_kill_disable 1" in oom_control
    daemon.docker("rm", "-f", cid)


def test_pids_limit_stops_a_fork_bomb(daemon: EssaimDaemon) -> None:
    # The subshell forks until it cannot (and then ends); the sleeps it left stay.
    script = "(for i in $(seq 40); do sleep 60 & done); sleep 60"
    cid = run_detached(daemon, "--pids-limit", "20", "busybox", "sh", "-c", script)
    events = cgroup_file(daemon, "pids", cid, "pids.events")
    deadline = time.monotonic() + 10
    # The kernel counts the forks the limit refused: the bomb did hit it.
    while events.read_text().split() == ["max", "0"]:
        assert time.monotonic() < deadline, "the fork bomb never reached the limit"
        time.sleep(0.05)
    assert int(cgroup_file(daemon, "pids", cid, "pids.current").read_text()) <= 20
    peak = cgroup_file(daemon, "pids", cid, "pids.peak")
    if peak.exists():  # kernels from 6.1 on keep the highest count
        assert int(peak.read_text()) == 20
    tasks = cgroup_file(daemon, "pids", cid, "tasks").read_text().split()
    assert len(tasks) <= 20
    assert cgroup_file(daemon, "pids", cid, "pids.max").read_text().strip() == "20"
    assert host_config(daemon, cid)["PidsLimit"] == 20
    daemon.docker("rm", "-f", cid)


def test_cpus_is_a_cfs_quota(daemon: EssaimDaemon) -> None:
    cid = run_detached(daemon, "--cpus", "0.5", "--cpu-shares", "512", "busybox", "sleep", "60")
    assert cgroup_file(daemon, "cpu", cid, "cpu.cfs_quota_us").read_text() == "50000\n"
    assert cgroup_file(daemon, "cpu", cid, "cpu.cfs_period_us").read_text() == "100000\n"
    assert cgroup_file(daemon, "cpu", cid, "cpu.shares").read_text() == "512\n"
    config = host_config(daemon, cid)
    assert config["NanoCpus"] == 500_000_000
    assert config["CpuShares"] == 512
    daemon.docker("rm", "-f", cid)


def test_cpuset_pins_the_container(daemon: EssaimDaemon) -> None:
    cid = run_detached(daemon, "--cpuset-cpus", "1", "busybox", "sleep", "60")
    assert cgroup_file(daemon, "cpuset", cid, "cpuset.cpus").read_text() == "1\n"
    assert host_config(daemon, cid)["CpusetCpus"] == "1"
    inside = daemon.docker("exec", cid, "grep", "Cpus_allowed_list", "/proc/self/status")
    if inside.returncode == 0:  # exec may not be there yet
        assert inside.stdout.split()[-1] == "1"
    daemon.docker("rm", "-f", cid)


def test_cpuset_of_a_missing_cpu_is_refused(daemon: EssaimDaemon) -> None:
    result = daemon.docker("create", "--cpuset-cpus", "0-63", "busybox", "true")
    assert result.returncode != 0
    assert "Requested CPUs are not available - requested 0-63" in result.stderr


def test_shm_size_is_the_size_of_dev_shm(daemon: EssaimDaemon) -> None:
    name = f"shm-{time.monotonic_ns()}"
    argv = ["run", "--name", name, "--shm-size", "16m", "busybox", "df", "-k", "/dev/shm"]
    result = daemon.docker(*argv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split()[1] == "16384"
    assert host_config(daemon, name)["ShmSize"] == 16 * MiB
    default = daemon.docker("run", "--rm", "busybox", "df", "-k", "/dev/shm")
    assert default.stdout.splitlines()[-1].split()[1] == "65536"


def test_ulimit_nofile_inside(daemon: EssaimDaemon) -> None:
    name = f"ulimit-{time.monotonic_ns()}"
    result = daemon.docker(
        "run", "--name", name, "--ulimit", "nofile=1000:2000", "busybox",
        "sh", "-c", "ulimit -n; ulimit -Hn",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1000", "2000"]
    assert host_config(daemon, name)["Ulimits"] == [{"Name": "nofile", "Soft": 1000, "Hard": 2000}]


def test_too_small_a_memory_limit_is_refused_at_create(daemon: EssaimDaemon) -> None:
    result = daemon.docker("create", "-m", "1m", "busybox", "true")
    assert result.returncode != 0
    assert "Minimum memory limit allowed is 6MB" in result.stderr
