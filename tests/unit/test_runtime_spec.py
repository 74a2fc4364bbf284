"""The OCI config.json built for a container: Docker's defaults within this host's limits."""

import json
from pathlib import Path
from typing import Any

import pytest

from essaim.errors import InvalidParameter
from essaim.model.device import DeviceMapping
from essaim.runtime.capabilities import (
    DEFAULT_CAPABILITIES,
    KNOWN_CAPABILITIES,
    capabilities_from_mask,
    container_capabilities,
    normalize_capabilities,
)
from essaim.runtime.host import RLIM_UNLIMITED, HostFacts, parse_kernel_release
from essaim.runtime.mounts import Mount, bind_mount
from essaim.runtime.rlimits import Ulimit, container_rlimits
from essaim.runtime.security_opts import parse_security_opts
from essaim.runtime.spec import MASKED_PATHS, READONLY_PATHS, RunSpec, build_oci_config

pytestmark = pytest.mark.unit

ALL_CAPS = frozenset(KNOWN_CAPABILITIES)
# Like the machines this runs on: no CAP_SYS_RESOURCE, a hard NOFILE of 20000.
HOST_CAPS = ALL_CAPS - {"CAP_SYS_RESOURCE"}


def host_facts(**overrides: Any) -> HostFacts:
    values: dict[str, Any] = {
        "rlimit_hard": {"nofile": 20000, "nproc": 96365, "core": RLIM_UNLIMITED},
        "cgroup_version": 1,
        "arch": "x86_64",
        "kernel": (6, 1),
        "ncpu": 4,
        "capabilities": HOST_CAPS,
        "swap_limit": True,
    }
    values.update(overrides)
    return HostFacts(**values)


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nstaff:x:50:app\n")
    return root


def build(rootfs: Path, host: HostFacts | None = None, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "container_id": "0123456789abcdef0123",
        "rootfs": str(rootfs),
        "args": ["sh", "-c", "true"],
        "cgroups_path": "/essaim-abc/0123456789abcdef0123",
    }
    values.update(fields)
    config: dict[str, Any] = build_oci_config(RunSpec(**values), host or host_facts())
    return config


def mount_at(config: dict[str, Any], destination: str) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = [m for m in config["mounts"] if m["destination"] == destination]
    assert len(mounts) == 1, mounts
    return mounts[0]


# --- the whole document -------------------------------------------------------------


def test_default_config_shape(rootfs: Path) -> None:
    config = build(rootfs)
    assert config["ociVersion"] == "1.0.2-dev"
    assert config["root"] == {"path": str(rootfs), "readonly": False}
    assert config["hostname"] == "0123456789ab"
    process = config["process"]
    assert process["terminal"] is False
    assert "consoleSize" not in process
    assert process["args"] == ["sh", "-c", "true"]
    assert process["cwd"] == "/"
    assert process["user"] == {"uid": 0, "gid": 0, "additionalGids": [0]}
    assert process["noNewPrivileges"] is False
    assert process["oomScoreAdj"] == 0
    linux = config["linux"]
    assert linux["cgroupsPath"] == "/essaim-abc/0123456789abcdef0123"
    assert linux["maskedPaths"] == list(MASKED_PATHS)
    assert linux["readonlyPaths"] == list(READONLY_PATHS)
    assert linux["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "sysctl" not in linux
    json.dumps(config)  # serialisable as is


def test_masked_and_readonly_paths_are_dockers() -> None:
    assert "/proc/kcore" in MASKED_PATHS and "/sys/firmware" in MASKED_PATHS
    assert "/sys/devices/virtual/powercap" in MASKED_PATHS
    assert set(READONLY_PATHS) == {
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    }


def test_invalid_spec_is_refused_before_anything(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter, match="No command specified"):
        build(rootfs, args=[])
    with pytest.raises(InvalidParameter, match="needs to be an absolute path"):
        build(rootfs, cwd="work")
    with pytest.raises(InvalidParameter, match="oom score adj"):
        build(rootfs, oom_score_adj=1001)
    with pytest.raises(InvalidParameter, match="absolute"):
        build(Path("relative/rootfs"))


# --- process: env, terminal, user -----------------------------------------------------


def test_env_gets_path_and_hostname_first(rootfs: Path) -> None:
    env = build(rootfs, env=["FOO=bar"])["process"]["env"]
    assert env == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME=0123456789ab",
        "FOO=bar",
    ]


def test_env_overrides_defaults_in_place_and_bare_names_unset(rootfs: Path) -> None:
    env = build(rootfs, env=["PATH=/bin", "HOSTNAME", "A=1", "A=2"], hostname="web")["process"][
        "env"
    ]
    assert env == ["PATH=/bin", "A=2"]


def test_tty_sets_term_and_console_size(rootfs: Path) -> None:
    process = build(rootfs, tty=True, console_size=(40, 120))["process"]
    assert process["terminal"] is True
    assert "TERM=xterm" in process["env"]
    assert process["consoleSize"] == {"height": 40, "width": 120}


def test_user_is_resolved_in_the_rootfs(rootfs: Path) -> None:
    process = build(rootfs, user="app", group_add=["root"])["process"]
    assert process["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 50, 0]}


def test_unknown_user_is_refused(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter, match="unable to find user ghost"):
        build(rootfs, user="ghost")


# --- capabilities ---------------------------------------------------------------------


def test_default_capabilities_are_dockers(rootfs: Path) -> None:
    caps = build(rootfs)["process"]["capabilities"]
    assert caps["bounding"] == list(DEFAULT_CAPABILITIES)
    assert caps["effective"] == caps["permitted"] == caps["bounding"]
    assert caps["inheritable"] == [] and caps["ambient"] == []
    assert len(DEFAULT_CAPABILITIES) == 14


def test_non_root_user_keeps_only_the_bounding_set(rootfs: Path) -> None:
    caps = build(rootfs, user="1000")["process"]["capabilities"]
    assert caps["bounding"] == list(DEFAULT_CAPABILITIES)
    assert caps["effective"] == caps["permitted"] == []


def test_cap_add_and_drop_accept_dockers_spellings(rootfs: Path) -> None:
    caps = build(rootfs, cap_add=["net_admin", "CAP_SYS_PTRACE"], cap_drop=["MKNOD", "cap_kill"])[
        "process"
    ]["capabilities"]["bounding"]
    assert "CAP_NET_ADMIN" in caps and "CAP_SYS_PTRACE" in caps
    assert "CAP_MKNOD" not in caps and "CAP_KILL" not in caps
    assert caps[-2:] == ["CAP_NET_ADMIN", "CAP_SYS_PTRACE"]


def test_cap_add_changes_the_seccomp_profile(rootfs: Path) -> None:
    config = build(rootfs, cap_add=["SYS_ADMIN"])
    names = {n for rule in config["linux"]["seccomp"]["syscalls"] for n in rule["names"]}
    assert "mount" in names


def test_drop_all_keeps_only_added() -> None:
    caps = container_capabilities(["chown"], ["ALL"], privileged=False, available=ALL_CAPS)
    assert caps == ["CAP_CHOWN"]


def test_add_all_minus_drops_is_limited_to_what_the_host_holds() -> None:
    caps = container_capabilities(["all"], ["NET_ADMIN"], privileged=False, available=HOST_CAPS)
    assert "CAP_NET_ADMIN" not in caps
    assert "CAP_SYS_RESOURCE" not in caps
    assert "CAP_SYS_ADMIN" in caps
    assert len(caps) == len(KNOWN_CAPABILITIES) - 2


def test_unknown_capability_is_refused_with_dockers_words() -> None:
    with pytest.raises(InvalidParameter) as info:
        normalize_capabilities(["FLY"])
    assert info.value.message == 'unknown capability: "CAP_FLY"'


def test_adding_a_capability_the_daemon_lacks_is_refused(rootfs: Path) -> None:
    # runc would fail later with "unable to apply caps: operation not permitted".
    with pytest.raises(InvalidParameter, match="CAP_SYS_RESOURCE"):
        build(rootfs, cap_add=["SYS_RESOURCE"])


def test_capability_mask_decoding() -> None:
    assert capabilities_from_mask(0b1) == {"CAP_CHOWN"}
    assert capabilities_from_mask(0x1FFFEFFFFFF) == HOST_CAPS


# --- privileged ----------------------------------------------------------------------


def test_privileged_gets_everything_the_host_has(rootfs: Path) -> None:
    config = build(rootfs, privileged=True, cap_drop=["ALL"])
    caps = config["process"]["capabilities"]
    assert set(caps["bounding"]) == HOST_CAPS == set(caps["effective"])
    linux = config["linux"]
    assert "seccomp" not in linux
    assert "maskedPaths" not in linux and "readonlyPaths" not in linux
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert "ro" not in mount_at(config, "/sys")["options"]
    assert "ro" not in mount_at(config, "/sys/fs/cgroup")["options"]


# --- security options ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], False),
        (["no-new-privileges"], True),
        (["no-new-privileges:true"], True),
        (["no-new-privileges=1"], True),
        (["no-new-privileges", "no-new-privileges=false"], False),
    ],
)
def test_no_new_privileges(rootfs: Path, options: list[str], expected: bool) -> None:
    assert build(rootfs, security_opt=options)["process"]["noNewPrivileges"] is expected


def test_seccomp_unconfined_removes_the_filter_only(rootfs: Path) -> None:
    linux = build(rootfs, security_opt=["seccomp=unconfined"])["linux"]
    assert "seccomp" not in linux
    assert linux["maskedPaths"]


def test_seccomp_custom_profile_json(rootfs: Path) -> None:
    profile = json.dumps({"defaultAction": "SCMP_ACT_LOG", "syscalls": []})
    seccomp = build(rootfs, security_opt=[f"seccomp={profile}"])["linux"]["seccomp"]
    assert seccomp == {"defaultAction": "SCMP_ACT_LOG", "architectures": [], "syscalls": []}


@pytest.mark.parametrize("option", ["bogus", "no-new-privileges=maybe", "nonsense=1"])
def test_bad_security_opts_are_refused(option: str) -> None:
    with pytest.raises(InvalidParameter, match="invalid --security-opt"):
        parse_security_opts([option])


def test_label_and_apparmor_are_accepted_and_ignored() -> None:
    options = parse_security_opts(["label=disable", "apparmor=unconfined", "label:type:x"])
    assert options.no_new_privileges is False and options.seccomp == ""


# --- mounts --------------------------------------------------------------------------


def test_default_mounts(rootfs: Path) -> None:
    config = build(rootfs)
    destinations = [m["destination"] for m in config["mounts"]]
    assert destinations == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/sys",
        "/sys/fs/cgroup",
        "/dev/mqueue",
        "/dev/shm",
    ]
    assert mount_at(config, "/proc")["type"] == "proc"
    dev = mount_at(config, "/dev")
    assert dev["type"] == "tmpfs"
    assert {"nosuid", "strictatime", "mode=755", "size=65536k"} <= set(dev["options"])
    pts = mount_at(config, "/dev/pts")["options"]
    assert {"newinstance", "ptmxmode=0666", "mode=0620", "gid=5"} <= set(pts)
    assert "ro" in mount_at(config, "/sys")["options"]
    assert mount_at(config, "/sys/fs/cgroup")["type"] == "cgroup"
    assert "ro" in mount_at(config, "/sys/fs/cgroup")["options"]
    assert mount_at(config, "/dev/mqueue")["type"] == "mqueue"
    shm = mount_at(config, "/dev/shm")
    assert shm["type"] == "tmpfs" and "size=67108864" in shm["options"]


def test_extra_binds_follow_defaults_parents_first(rootfs: Path) -> None:
    extra = [
        bind_mount("/data/c1/hosts", "/etc/hosts"),
        bind_mount("/data/c1/resolv.conf", "/etc/resolv.conf", readonly=True),
        Mount("/vol/a", "/srv/a", "bind", ["rbind"]),
        Mount("/vol", "/srv/vol", "bind", ["rbind"]),
    ]
    config = build(rootfs, mounts=extra)
    tail = config["mounts"][7:]
    assert [m["destination"] for m in tail] == ["/vol", "/etc/hosts", "/etc/resolv.conf", "/vol/a"]
    assert tail[1] == {
        "destination": "/etc/hosts",
        "type": "bind",
        "source": "/data/c1/hosts",
        "options": ["rbind", "rprivate"],
    }
    assert tail[2]["options"] == ["rbind", "rprivate", "ro"]


def test_extra_mount_replaces_the_default_at_its_destination(rootfs: Path) -> None:
    config = build(rootfs, mounts=[Mount("/dev/shm", "/run/essaim/shm/c1", "bind", ["rbind"])])
    assert mount_at(config, "/dev/shm")["source"] == "/run/essaim/shm/c1"


def test_relative_mount_destination_is_refused(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter, match="must be absolute"):
        build(rootfs, mounts=[bind_mount("/a", "etc/hosts")])


def test_readonly_rootfs_keeps_device_and_proc_mounts_writable(rootfs: Path) -> None:
    config = build(rootfs, readonly_rootfs=True, mounts=[bind_mount("/d", "/data")])
    assert config["root"]["readonly"] is True
    for destination in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/data"):
        assert "ro" not in mount_at(config, destination)["options"]
    assert "ro" in mount_at(config, "/sys")["options"]


def test_shm_size_is_configurable(rootfs: Path) -> None:
    config = build(rootfs, shm_size=1024 * 1024)
    assert "size=1048576" in mount_at(config, "/dev/shm")["options"]


# --- namespaces and sysctls -------------------------------------------------------------


def test_new_namespaces_without_cgroupns_on_cgroup_v1(rootfs: Path) -> None:
    namespaces = build(rootfs)["linux"]["namespaces"]
    assert namespaces == [
        {"type": "pid"},
        {"type": "network"},
        {"type": "ipc"},
        {"type": "uts"},
        {"type": "mount"},
    ]


def test_cgroup_v2_gets_a_private_cgroup_namespace(rootfs: Path) -> None:
    namespaces = build(rootfs, host_facts(cgroup_version=2))["linux"]["namespaces"]
    assert {"type": "cgroup"} in namespaces


def test_host_network_has_no_network_namespace(rootfs: Path) -> None:
    namespaces = build(rootfs, network_namespace=None)["linux"]["namespaces"]
    assert all(ns["type"] != "network" for ns in namespaces)


def test_joining_a_network_namespace_by_path(rootfs: Path) -> None:
    namespaces = build(rootfs, network_namespace="/run/essaim/netns/c1")["linux"]["namespaces"]
    assert {"type": "network", "path": "/run/essaim/netns/c1"} in namespaces
    with pytest.raises(InvalidParameter):
        build(rootfs, network_namespace="relative/ns")


def test_namespaced_sysctls_are_passed(rootfs: Path) -> None:
    sysctls = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "fs.mqueue.msg_max": "20"}
    assert build(rootfs, sysctls=sysctls)["linux"]["sysctl"] == sysctls


def test_host_wide_sysctls_are_refused(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter, match="not in a separate kernel namespace"):
        build(rootfs, sysctls={"vm.swappiness": "10"})
    with pytest.raises(InvalidParameter, match="host network namespace"):
        build(rootfs, network_namespace=None, sysctls={"net.core.somaxconn": "1024"})


# --- cgroup resources ----------------------------------------------------------------


def test_devices_deny_all_then_allow_dockers_set(rootfs: Path) -> None:
    devices = build(rootfs)["linux"]["resources"]["devices"]
    assert devices[0] == {"allow": False, "access": "rwm"}
    allowed = {(d.get("type"), d.get("major"), d.get("minor")) for d in devices[1:] if d["allow"]}
    for device in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)]:
        assert ("c", *device) in allowed
    assert ("c", 136, None) in allowed  # every /dev/pts/N
    assert ("c", 10, 229) not in allowed  # no fuse by default


def test_no_limits_by_default(rootfs: Path) -> None:
    resources = build(rootfs)["linux"]["resources"]
    assert set(resources) == {"devices"}


def test_nano_cpus_become_a_cfs_quota(rootfs: Path) -> None:
    cpu = build(rootfs, nano_cpus=1_500_000_000)["linux"]["resources"]["cpu"]
    assert cpu == {"quota": 150_000, "period": 100_000}
    cpu = build(rootfs, nano_cpus=10_000_000)["linux"]["resources"]["cpu"]
    assert cpu == {"quota": 1000, "period": 100_000}


def test_nano_cpus_range_is_the_hosts(rootfs: Path) -> None:
    message = "Range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available"
    with pytest.raises(InvalidParameter) as info:
        build(rootfs, nano_cpus=5_000_000_000)
    assert info.value.message == message
    with pytest.raises(InvalidParameter):
        build(rootfs, nano_cpus=1_000_000)


def test_nano_cpus_conflict_with_quota_and_period(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter, match="Nano CPUs and CPU Quota"):
        build(rootfs, nano_cpus=1_000_000_000, cpu_quota=50_000)
    with pytest.raises(InvalidParameter, match="Nano CPUs and CPU Period"):
        build(rootfs, nano_cpus=1_000_000_000, cpu_period=50_000)


def test_explicit_quota_period_and_shares(rootfs: Path) -> None:
    cpu = build(rootfs, cpu_quota=25_000, cpu_period=50_000, cpu_shares=512)["linux"]["resources"][
        "cpu"
    ]
    assert cpu == {"shares": 512, "period": 50_000, "quota": 25_000}
    assert build(rootfs, cpu_shares=1)["linux"]["resources"]["cpu"] == {"shares": 2}
    with pytest.raises(InvalidParameter, match="CPU cfs period"):
        build(rootfs, cpu_period=100)
    with pytest.raises(InvalidParameter, match="CPU cfs quota"):
        build(rootfs, cpu_quota=100)


def test_memory_limit_with_default_swap_of_twice_memory(rootfs: Path) -> None:
    memory = build(rootfs, memory=128 * 2**20)["linux"]["resources"]["memory"]
    assert memory == {"limit": 128 * 2**20, "swap": 256 * 2**20}
    memory = build(rootfs, memory=128 * 2**20, memory_swap=-1)["linux"]["resources"]["memory"]
    assert memory["swap"] == -1


def test_memory_swap_left_out_when_the_host_cannot_limit_it(rootfs: Path) -> None:
    memory = build(rootfs, host_facts(swap_limit=False), memory=64 * 2**20)["linux"]["resources"][
        "memory"
    ]
    assert memory == {"limit": 64 * 2**20}


def test_memory_validation_uses_dockers_words(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter, match="Minimum memory limit allowed is 6MB"):
        build(rootfs, memory=1024)
    with pytest.raises(InvalidParameter, match="Minimum memoryswap limit"):
        build(rootfs, memory=64 * 2**20, memory_swap=32 * 2**20)
    with pytest.raises(InvalidParameter, match="always set the Memory limit"):
        build(rootfs, memory_swap=64 * 2**20)


def test_pids_limit(rootfs: Path) -> None:
    assert build(rootfs, pids_limit=100)["linux"]["resources"]["pids"] == {"limit": 100}
    assert "pids" not in build(rootfs, pids_limit=-1)["linux"]["resources"]


# --- rlimits -------------------------------------------------------------------------


def test_default_nofile_stays_under_the_hosts_hard_limit(rootfs: Path) -> None:
    rlimits = build(rootfs)["process"]["rlimits"]
    assert rlimits == [{"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 1024}]


def test_default_nofile_soft_is_clamped_on_a_tight_host() -> None:
    rlimits = container_rlimits([], host_facts(rlimit_hard={"nofile": 512}))
    assert rlimits == [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 512}]


def test_user_ulimits_replace_defaults_and_add_others(rootfs: Path) -> None:
    ulimits = [Ulimit("nofile", 4096, 8192), Ulimit("core", -1, -1), Ulimit("nproc", 100, 200)]
    rlimits = build(rootfs, ulimits=ulimits)["process"]["rlimits"]
    assert rlimits == [
        {"type": "RLIMIT_NOFILE", "hard": 8192, "soft": 4096},
        {"type": "RLIMIT_CORE", "hard": RLIM_UNLIMITED, "soft": RLIM_UNLIMITED},
        {"type": "RLIMIT_NPROC", "hard": 200, "soft": 100},
    ]


def test_ulimit_above_the_hosts_hard_limit_is_refused(rootfs: Path) -> None:
    # Docker's usual 1048576 would make runc fail: "error setting rlimit type 7".
    with pytest.raises(InvalidParameter) as info:
        build(rootfs, ulimits=[Ulimit("nofile", 1048576, 1048576)])
    assert info.value.message == (
        "ulimit nofile: hard limit 1048576 is above this host's hard limit 20000"
    )
    with pytest.raises(InvalidParameter, match="unlimited"):
        build(rootfs, ulimits=[Ulimit("nproc", -1, -1)])


def test_bad_ulimits_are_refused(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter, match="invalid ulimit type: bogus"):
        build(rootfs, ulimits=[Ulimit("bogus", 1, 1)])
    with pytest.raises(InvalidParameter, match="soft limit must be less than or equal"):
        build(rootfs, ulimits=[Ulimit("nofile", 2048, 1024)])


# --- host facts ----------------------------------------------------------------------


def test_host_facts_read_from_this_machine() -> None:
    facts = HostFacts.read()
    assert facts.nofile_hard > 0 and facts.nproc_hard > 0
    assert facts.cgroup_version in (1, 2)
    assert facts.ncpu >= 1
    assert facts.capabilities <= ALL_CAPS


def test_default_config_respects_this_machines_limits(rootfs: Path) -> None:
    facts = HostFacts.read()
    for rlimit in build(rootfs, facts)["process"]["rlimits"]:
        name = rlimit["type"].removeprefix("RLIMIT_").lower()
        assert rlimit["soft"] <= rlimit["hard"] <= facts.rlimit_hard[name]


@pytest.mark.parametrize(
    ("release", "expected"),
    [("6.1.0-18-amd64", (6, 1)), ("5.15.0", (5, 15)), ("4.8rc1", (4, 8)), ("weird", (0, 0))],
)
def test_kernel_release_parsing(release: str, expected: tuple[int, int]) -> None:
    assert parse_kernel_release(release) == expected


# --- identity: devices, namespaces, names ---------------------------------------------


def test_devices_are_nodes_and_rules_after_dockers_defaults(rootfs: Path) -> None:
    config = build(
        rootfs,
        devices=[DeviceMapping("/dev/zero", "/dev/myzero", "r")],
        device_cgroup_rules=["c 1:11 rwm"],
    )
    linux = config["linux"]
    assert [(d["path"], d["type"], d["major"], d["minor"]) for d in linux["devices"]] == [
        ("/dev/myzero", "c", 1, 5)
    ]
    rules = linux["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    assert rules[-2:] == [
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
        {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rwm"},
    ]


def test_no_devices_no_devices_key(rootfs: Path) -> None:
    assert "devices" not in build(rootfs)["linux"]


def test_privileged_sees_the_hosts_device_nodes(rootfs: Path) -> None:
    paths = [d["path"] for d in build(rootfs, privileged=True)["linux"]["devices"]]
    assert "/dev/null" in paths


def test_host_namespaces_are_left_out_and_host_uts_has_no_hostname(rootfs: Path) -> None:
    config = build(rootfs, pid_namespace=None, ipc_namespace=None, uts_namespace=None)
    kinds = [ns["type"] for ns in config["linux"]["namespaces"]]
    assert kinds == ["network", "mount"]
    assert "hostname" not in config


def test_domainname_is_set_by_its_sysctl(rootfs: Path) -> None:
    config = build(rootfs, domainname="example.org")
    assert config["linux"]["sysctl"] == {"kernel.domainname": "example.org"}


def test_explicit_cgroup_namespace_mode_wins(rootfs: Path) -> None:
    kinds = [ns["type"] for ns in build(rootfs, cgroup_namespace=True)["linux"]["namespaces"]]
    assert "cgroup" in kinds
    v2 = build(rootfs, host_facts(cgroup_version=2), cgroup_namespace=False)
    assert "cgroup" not in [ns["type"] for ns in v2["linux"]["namespaces"]]
