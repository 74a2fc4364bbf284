"""Resources at create: Docker's refusals, dockerd's defaults recorded in HostConfig,
the OCI resources and args they become (`--init` included)."""

from __future__ import annotations

import pytest

from essaim.engine.resource_settings import settle_resources
from essaim.errors import InvalidParameter
from essaim.model.container import HostConfig
from essaim.runtime.init_binary import IN_CONTAINER_PATH, init_args, init_mount
from essaim.runtime.mounts import DEFAULT_SHM_SIZE
from essaim.runtime.resources import container_resources, format_cpuset, parse_cpuset

pytestmark = pytest.mark.unit

MiB = 1024 * 1024


def test_create_records_dockerds_defaults() -> None:
    host = HostConfig(memory=32 * MiB, pids_limit=-1)
    settle_resources(host, ncpu=2)
    assert host.memory_swap == 64 * MiB
    assert host.shm_size == DEFAULT_SHM_SIZE
    assert host.pids_limit == 0


def test_create_keeps_what_was_asked() -> None:
    host = HostConfig(memory=32 * MiB, memory_swap=-1, shm_size=16 * MiB)
    settle_resources(host, ncpu=2)
    assert (host.memory_swap, host.shm_size) == (-1, 16 * MiB)


@pytest.mark.parametrize(
    ("host", "message"),
    [
        (HostConfig(memory=MiB), "Minimum memory limit allowed is 6MB"),
        (HostConfig(memory_swap=64 * MiB), "You should always set the Memory limit"),
        (HostConfig(shm_size=-1), "SHM size can not be less than 0"),
        (HostConfig(cpuset_cpus="5"), "Requested CPUs are not available - requested 5"),
        (HostConfig(cpuset_mems="a-b"), "Invalid value a-b for cpuset mems"),
        (HostConfig(memory_reservation=MiB), "Minimum memory reservation allowed is 6MB"),
    ],
)
def test_create_refuses_as_docker_does(host: HostConfig, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        settle_resources(host, ncpu=2)


def test_the_oci_resources_of_every_limit() -> None:
    resources = container_resources(
        privileged=False, memory=32 * MiB, memory_swap=64 * MiB, swap_limit=True,
        nano_cpus=0, cpu_shares=0, cpu_quota=0, cpu_period=0, ncpu=2, pids_limit=20,
        memory_reservation=20 * MiB, oom_kill_disable=True, cpuset_cpus="1", cpuset_mems="0",
    )  # fmt: skip
    assert resources["memory"] == {
        "limit": 32 * MiB, "swap": 64 * MiB, "reservation": 20 * MiB, "disableOOMKiller": True,
    }  # fmt: skip
    assert resources["cpu"] == {"cpus": "1", "mems": "0"}
    assert resources["pids"] == {"limit": 20}


def test_a_soft_limit_alone_needs_no_hard_one() -> None:
    resources = container_resources(
        privileged=False, memory=0, memory_swap=0, swap_limit=True, nano_cpus=0,
        cpu_shares=0, cpu_quota=0, cpu_period=0, ncpu=2, pids_limit=0,
        memory_reservation=20 * MiB,
    )  # fmt: skip
    assert resources["memory"] == {"reservation": 20 * MiB}


def test_cpusets_as_the_kernel_spells_them() -> None:
    assert parse_cpuset("0-2,4") == {0, 1, 2, 4}
    assert format_cpuset({0, 1, 3, 5, 6, 7}) == "0-1,3,5-7"
    with pytest.raises(ValueError):
        parse_cpuset("3-1")


def test_init_runs_the_command_as_its_child() -> None:
    assert init_args(["sleep", "1"]) == ["/sbin/docker-init", "--", "sleep", "1"]
    mount = init_mount("/usr/bin/tini-static")
    assert (mount.source, mount.destination) == ("/usr/bin/tini-static", IN_CONTAINER_PATH)
    assert "ro" in mount.options
