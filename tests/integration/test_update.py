"""`docker update` as dockerd does it: new limits recorded in HostConfig and applied at
once to a running container's cgroups, kept for its next start, and Docker's refusals."""

from __future__ import annotations

import json
import time
from pathlib import Path

import docker
import pytest

from tests.integration.daemon import EssaimDaemon

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def cgroup_value(daemon: EssaimDaemon, controller: str, cid: str, name: str) -> str:
    path = Path("/sys/fs/cgroup") / controller / daemon.cgroup_parent / cid / name
    return path.read_text().strip()


def host_config(daemon: EssaimDaemon, ref: str) -> dict[str, object]:
    result = daemon.docker("inspect", "-f", "{{json .HostConfig}}", ref)
    assert result.returncode == 0, result.stderr
    config: dict[str, object] = json.loads(result.stdout)
    return config


def sleeper(daemon: EssaimDaemon, *args: str) -> str:
    result = daemon.docker("run", "-d", *args, "busybox", "sleep", "600")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_update_applies_limits_to_a_running_container(daemon: EssaimDaemon) -> None:
    cid = sleeper(daemon)
    since = time.time() - 1
    result = daemon.docker(
        "update", "--memory", "64m", "--memory-swap", "128m", "--memory-reservation", "32m",
        "--cpus", "0.5", "--cpu-shares", "512", "--cpuset-cpus", "0", "--pids-limit", "30",
        cid,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == cid
    assert cgroup_value(daemon, "memory", cid, "memory.limit_in_bytes") == str(64 * MiB)
    assert cgroup_value(daemon, "memory", cid, "memory.memsw.limit_in_bytes") == str(128 * MiB)
    assert cgroup_value(daemon, "memory", cid, "memory.soft_limit_in_bytes") == str(32 * MiB)
    assert cgroup_value(daemon, "cpu", cid, "cpu.cfs_quota_us") == "50000"
    assert cgroup_value(daemon, "cpu", cid, "cpu.cfs_period_us") == "100000"
    assert cgroup_value(daemon, "cpu", cid, "cpu.shares") == "512"
    assert cgroup_value(daemon, "cpuset", cid, "cpuset.cpus") == "0"
    assert cgroup_value(daemon, "pids", cid, "pids.max") == "30"
    config = host_config(daemon, cid)
    assert config["Memory"] == 64 * MiB and config["MemorySwap"] == 128 * MiB
    assert config["MemoryReservation"] == 32 * MiB
    assert config["NanoCpus"] == 500_000_000 and config["CpuShares"] == 512
    assert config["CpusetCpus"] == "0" and config["PidsLimit"] == 30
    events = daemon.docker(
        "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
        "--filter", f"container={cid}", "--filter", "event=update", "--format", "{{.Action}}",
    )  # fmt: skip
    assert events.stdout.split() == ["update"]
    # A second update lifts the pids limit again.
    assert daemon.docker("update", "--pids-limit", "-1", cid).returncode == 0
    assert cgroup_value(daemon, "pids", cid, "pids.max") == "max"
    assert host_config(daemon, cid)["PidsLimit"] is None
    daemon.docker("rm", "-f", cid)


def test_update_of_a_stopped_container_takes_effect_at_its_next_start(
    daemon: EssaimDaemon,
) -> None:
    created = daemon.docker("create", "busybox", "sleep", "600")
    cid = created.stdout.strip()
    assert daemon.docker("update", "--cpus", "0.25", "--pids-limit", "15", cid).returncode == 0
    assert host_config(daemon, cid)["NanoCpus"] == 250_000_000
    assert daemon.docker("start", cid).returncode == 0
    assert cgroup_value(daemon, "cpu", cid, "cpu.cfs_quota_us") == "25000"
    assert cgroup_value(daemon, "pids", cid, "pids.max") == "15"
    daemon.docker("rm", "-f", cid)


def test_a_memory_limit_above_the_recorded_swap_needs_the_swap_too(daemon: EssaimDaemon) -> None:
    cid = sleeper(daemon)
    refused = daemon.docker("update", "--memory", "64m", cid)
    assert refused.returncode == 1
    assert (
        f"Error response from daemon: Cannot update container {cid}: Memory limit should be "
        "smaller than already set memoryswap limit, update the memoryswap at the same time"
    ) in refused.stderr
    assert host_config(daemon, cid)["Memory"] == 0  # nothing changed
    # A container created with -m has twice that as memory+swap: growing within it is fine.
    limited = sleeper(daemon, "-m", "32m")
    assert daemon.docker("update", "--memory", "48m", limited).returncode == 0
    assert cgroup_value(daemon, "memory", limited, "memory.limit_in_bytes") == str(48 * MiB)
    daemon.docker("rm", "-f", cid, limited)


def test_cpus_cannot_join_a_quota_already_set(daemon: EssaimDaemon) -> None:
    cid = sleeper(daemon, "--cpu-quota", "20000")
    refused = daemon.docker("update", "--cpus", "1", cid)
    assert refused.returncode == 1
    assert (
        "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set"
        in refused.stderr
    )
    daemon.docker("rm", "-f", cid)


def test_update_refuses_what_create_would(daemon: EssaimDaemon) -> None:
    cid = sleeper(daemon)
    small = daemon.docker("update", "--memory", "1m", "--memory-swap", "2m", cid)
    assert "Minimum memory limit allowed is 6MB" in small.stderr
    cpus = daemon.docker("update", "--cpus", "64", cid)
    assert "Range of CPUs is from 0.01 to" in cpus.stderr
    daemon.docker("rm", "-f", cid)


def test_restart_policy_update(daemon: EssaimDaemon) -> None:
    script = 'trap "exit 3" USR1; while :; do sleep 0.1; done'
    run = daemon.docker("run", "-d", "busybox", "sh", "-c", script)
    cid = run.stdout.strip()
    time.sleep(0.3)  # the trap is set
    assert daemon.docker("update", "--restart", "on-failure:3", cid).returncode == 0
    policy = host_config(daemon, cid)["RestartPolicy"]
    assert policy == {"Name": "on-failure", "MaximumRetryCount": 3}
    # The new policy acts on the next exit.
    assert daemon.docker("kill", "-s", "USR1", cid).returncode == 0
    deadline = time.monotonic() + 20
    while daemon.docker("inspect", "-f", "{{.RestartCount}}", cid).stdout.strip() != "1":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    daemon.docker("rm", "-f", cid)


def test_restart_policy_cannot_be_set_on_an_auto_removed_container(
    daemon: EssaimDaemon,
) -> None:
    cid = sleeper(daemon, "--rm")
    refused = daemon.docker("update", "--restart", "always", cid)
    assert refused.returncode == 1
    assert (
        f"Cannot update container {cid}: Restart policy cannot be updated because AutoRemove "
        "is enabled for the container"
    ) in refused.stderr
    daemon.docker("rm", "-f", cid)


def test_update_through_the_sdk(daemon: EssaimDaemon) -> None:
    client = daemon.client()
    container = client.containers.run("busybox", ["sleep", "600"], detach=True)
    try:
        reply = container.update(mem_limit="64m", memswap_limit="96m", cpu_shares=256)
        assert reply == {"Warnings": []}
        container.reload()
        assert container.attrs["HostConfig"]["Memory"] == 64 * MiB
        assert container.attrs["HostConfig"]["MemorySwap"] == 96 * MiB
        assert cgroup_value(daemon, "cpu", container.id, "cpu.shares") == "256"
        with pytest.raises(docker.errors.APIError) as refused:
            container.update(mem_limit="128m")  # above the 96m of memory+swap
        assert refused.value.status_code == 409  # dockerd's conflictingUpdateOptions
    finally:
        container.remove(force=True)
        client.close()


def test_update_of_an_unknown_container_is_a_404(daemon: EssaimDaemon) -> None:
    result = daemon.docker("update", "--cpus", "1", "no-such-container-here")
    assert result.returncode == 1
    assert "No such container: no-such-container-here" in result.stderr
