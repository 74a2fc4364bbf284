"""`docker update` decided without a daemon: dockerd's checks of the request (400s), its
merge rules (409s: "Cannot update container ..."), and what `runc update` is given."""

from __future__ import annotations

import pytest

from essaim.api.container_update import parse_update
from essaim.engine.update import (
    ResourceUpdate,
    check_update,
    live_resources,
    updated_host_config,
)
from essaim.errors import Conflict, InvalidParameter
from essaim.model.container import HostConfig, RestartPolicy

pytestmark = pytest.mark.unit

MiB = 1024 * 1024
CID = "c" * 64


def test_the_clis_body_becomes_an_update() -> None:
    body = {
        "BlkioWeight": 0, "CpuShares": 512, "Memory": 64 * MiB, "NanoCpus": 0,
        "CpuPeriod": 0, "CpuQuota": 0, "CpusetCpus": "0", "CpusetMems": "",
        "MemoryReservation": 0, "MemorySwap": 128 * MiB, "PidsLimit": 30,
        "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
    }  # fmt: skip
    update = parse_update(body)
    assert update == ResourceUpdate(
        memory=64 * MiB, memory_swap=128 * MiB, cpu_shares=512, cpuset_cpus="0", pids_limit=30
    )


def test_a_policy_is_only_an_update_when_named() -> None:
    assert parse_update({"RestartPolicy": {"Name": ""}}).restart_policy is None
    named = parse_update({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}})
    assert named.restart_policy == RestartPolicy("on-failure", 2)
    assert parse_update({}).pids_limit is None


@pytest.mark.parametrize(
    ("update", "message"),
    [
        (ResourceUpdate(memory=MiB), "Minimum memory limit allowed is 6MB"),
        (
            ResourceUpdate(memory=64 * MiB, memory_swap=32 * MiB),
            "Minimum memoryswap limit should be larger than memory limit",
        ),
        (ResourceUpdate(memory_reservation=MiB), "Minimum memory reservation allowed is 6MB"),
        (
            ResourceUpdate(memory=32 * MiB, memory_reservation=64 * MiB),
            "Minimum memory limit can not be less than memory reservation limit",
        ),
        (ResourceUpdate(nano_cpus=3_000_000_000), "Range of CPUs is from 0.01 to 2.00"),
        (
            ResourceUpdate(nano_cpus=1_000_000_000, cpu_quota=50_000),
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ),
        (ResourceUpdate(cpu_period=500), "CPU cfs period can not be less than 1ms"),
        (
            ResourceUpdate(cpuset_cpus="0-3"),
            "Requested CPUs are not available - requested 0-3, available: 0-1",
        ),
        (ResourceUpdate(cpuset_cpus="zero"), "Invalid value zero for cpuset cpus"),
        (
            ResourceUpdate(restart_policy=RestartPolicy("sometimes")),
            "unknown policy 'sometimes'",
        ),
    ],
)
def test_the_request_is_checked_as_dockerd_checks_it(update: ResourceUpdate, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        check_update(update, ncpu=2)


def test_swap_alone_is_a_valid_update() -> None:
    # At create, swap needs a memory limit; an update may name swap alone.
    check_update(ResourceUpdate(memory_swap=128 * MiB), ncpu=2)


def test_memory_above_the_recorded_swap_needs_new_swap() -> None:
    with pytest.raises(Conflict) as refused:
        updated_host_config(HostConfig(), ResourceUpdate(memory=64 * MiB), CID)
    assert refused.value.message == (
        f"Cannot update container {CID}: Memory limit should be smaller than already set "
        "memoryswap limit, update the memoryswap at the same time"
    )
    recorded = HostConfig(memory=32 * MiB, memory_swap=64 * MiB)
    assert updated_host_config(recorded, ResourceUpdate(memory=48 * MiB), CID).memory == 48 * MiB
    both = updated_host_config(
        HostConfig(), ResourceUpdate(memory=64 * MiB, memory_swap=-1), CID
    )  # fmt: skip
    assert (both.memory, both.memory_swap) == (64 * MiB, -1)


@pytest.mark.parametrize(
    ("recorded", "update", "message"),
    [
        (
            HostConfig(cpu_period=50_000),
            ResourceUpdate(nano_cpus=10**9),
            "Nano CPUs cannot be updated as CPU Period",
        ),
        (
            HostConfig(cpu_quota=50_000),
            ResourceUpdate(nano_cpus=10**9),
            "Nano CPUs cannot be updated as CPU Quota",
        ),
        (
            HostConfig(nano_cpus=10**9),
            ResourceUpdate(cpu_period=50_000),
            "CPU Period cannot be updated as NanoCPUs",
        ),
        (
            HostConfig(nano_cpus=10**9),
            ResourceUpdate(cpu_quota=50_000),
            "CPU Quota cannot be updated as NanoCPUs",
        ),
    ],
)
def test_cpus_and_quota_or_period_exclude_each_other(
    recorded: HostConfig, update: ResourceUpdate, message: str
) -> None:
    with pytest.raises(Conflict, match=f"Conflicting options: {message} has already"):
        updated_host_config(recorded, update, CID)


def test_the_merge_changes_only_what_is_named_and_leaves_the_original_alone() -> None:
    recorded = HostConfig(memory=32 * MiB, memory_swap=64 * MiB, cpu_shares=512, pids_limit=10)
    merged = updated_host_config(recorded, ResourceUpdate(nano_cpus=500_000_000), CID)
    assert merged.nano_cpus == 500_000_000
    assert (merged.memory, merged.cpu_shares, merged.pids_limit) == (32 * MiB, 512, 10)
    assert recorded.nano_cpus == 0
    lifted = updated_host_config(recorded, ResourceUpdate(pids_limit=-1), CID)
    assert lifted.pids_limit == 0


def test_restart_policy_updates_and_auto_remove() -> None:
    policy = RestartPolicy("always")
    merged = updated_host_config(HostConfig(), ResourceUpdate(restart_policy=policy), CID)
    assert merged.restart_policy == policy
    with pytest.raises(Conflict, match="AutoRemove is enabled for the container"):
        updated_host_config(
            HostConfig(auto_remove=True), ResourceUpdate(restart_policy=policy), CID
        )  # fmt: skip
    # Setting "no" on an auto-removed container is allowed: it changes nothing.
    updated_host_config(
        HostConfig(auto_remove=True), ResourceUpdate(restart_policy=RestartPolicy("no")), CID
    )  # fmt: skip


def test_runc_is_given_only_what_the_request_names() -> None:
    assert live_resources(ResourceUpdate()) == {}
    assert live_resources(ResourceUpdate(restart_policy=RestartPolicy("always"))) == {}
    assert live_resources(
        ResourceUpdate(memory=64 * MiB, memory_swap=128 * MiB, nano_cpus=500_000_000)
    ) == {
        "memory": {"limit": 64 * MiB, "swap": 128 * MiB},
        "cpu": {"quota": 50_000, "period": 100_000},
    }  # fmt: skip
    assert live_resources(ResourceUpdate(pids_limit=0)) == {"pids": {"limit": -1}}
    assert live_resources(ResourceUpdate(pids_limit=30)) == {"pids": {"limit": 30}}
    assert live_resources(ResourceUpdate(cpuset_cpus="1", cpu_shares=256)) == {
        "cpu": {"shares": 256, "cpus": "1"}
    }
