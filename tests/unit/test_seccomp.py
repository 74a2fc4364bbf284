"""Docker's default seccomp profile and its resolution for one container on one host."""

import json
from typing import Any

import pytest

from essaim.errors import InvalidParameter
from essaim.runtime.capabilities import DEFAULT_CAPABILITIES, KNOWN_CAPABILITIES
from essaim.runtime.seccomp import (
    BASE_SYSCALLS,
    CLONE_NAMESPACE_FLAGS,
    default_profile,
    docker_default_profile,
    load_profile,
    resolve_profile,
)

pytestmark = pytest.mark.unit

DEFAULT = set(DEFAULT_CAPABILITIES)


def allowed(profile: dict[str, Any]) -> set[str]:
    """Syscalls allowed unconditionally (no argument filter) by a resolved profile."""
    return {
        name
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW" and "args" not in rule
        for name in rule["names"]
    }


def rules_for(profile: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [rule for rule in profile["syscalls"] if name in rule["names"]]


def test_default_action_is_eperm() -> None:
    profile = default_profile(DEFAULT, "x86_64")
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["defaultErrnoRet"] == 1


def test_x86_64_covers_its_32_bit_abis() -> None:
    profile = default_profile(DEFAULT, "x86_64")
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]


def test_arm64_covers_arm() -> None:
    profile = default_profile(DEFAULT, "aarch64")
    assert profile["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "set_tls" in allowed(profile)
    assert "arch_prctl" not in allowed(profile)


def test_unknown_machine_filters_the_native_abi_only() -> None:
    assert default_profile(DEFAULT, "m68k")["architectures"] == []


def test_base_list_has_the_everyday_syscalls_and_not_the_dangerous_ones() -> None:
    assert len(BASE_SYSCALLS) == len(set(BASE_SYSCALLS)) == 349
    for name in ("read", "write", "openat", "execve", "futex", "epoll_wait", "io_uring_setup"):
        assert name in BASE_SYSCALLS
    for name in ("mount", "ptrace", "kexec_load", "bpf", "reboot", "unshare", "clone"):
        assert name not in BASE_SYSCALLS


def test_default_caps_block_admin_syscalls() -> None:
    profile = default_profile(DEFAULT, "x86_64")
    names = allowed(profile)
    for blocked in ("mount", "umount2", "unshare", "setns", "reboot", "init_module", "acct"):
        assert blocked not in names
    # CAP_SYS_CHROOT is a default capability, so chroot is allowed.
    assert "chroot" in names
    assert "arch_prctl" in names and "modify_ldt" in names


def test_ptrace_allowed_on_modern_kernels_only() -> None:
    assert "ptrace" in allowed(default_profile(DEFAULT, "x86_64", (5, 10)))
    assert "ptrace" not in allowed(default_profile(DEFAULT, "x86_64", (4, 4)))


def test_clone_without_sys_admin_is_filtered_by_namespace_flags() -> None:
    profile = default_profile(DEFAULT, "x86_64")
    (rule,) = rules_for(profile, "clone")
    assert rule["args"] == [
        {"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    ]
    assert CLONE_NAMESPACE_FLAGS == 2114060288


def test_clone3_answers_enosys_without_sys_admin() -> None:
    profile = default_profile(DEFAULT, "x86_64")
    (rule,) = rules_for(profile, "clone3")
    assert rule["action"] == "SCMP_ACT_ERRNO"
    assert rule["errnoRet"] == 38


def test_s390x_filters_clone_flags_in_its_second_argument() -> None:
    profile = default_profile(DEFAULT, "s390x")
    (rule,) = rules_for(profile, "clone")
    assert rule["args"][0]["index"] == 1


def test_sys_admin_unlocks_mount_clone_and_unshare() -> None:
    profile = default_profile(DEFAULT | {"CAP_SYS_ADMIN"}, "x86_64")
    names = allowed(profile)
    for name in ("mount", "umount2", "unshare", "setns", "clone", "clone3", "sethostname"):
        assert name in names
    assert all(rule["action"] == "SCMP_ACT_ALLOW" for rule in rules_for(profile, "clone3"))
    assert all("args" not in rule for rule in rules_for(profile, "clone"))


@pytest.mark.parametrize(
    ("capability", "syscalls"),
    [
        ("CAP_SYS_PTRACE", {"kcmp", "pidfd_getfd", "process_madvise"}),
        ("CAP_SYS_MODULE", {"init_module", "finit_module", "delete_module"}),
        ("CAP_SYS_TIME", {"settimeofday", "stime", "clock_settime", "clock_settime64"}),
        ("CAP_SYS_BOOT", {"reboot"}),
        ("CAP_SYS_NICE", {"mbind", "set_mempolicy", "get_mempolicy"}),
        ("CAP_SYS_RAWIO", {"iopl", "ioperm"}),
        ("CAP_SYS_PACCT", {"acct"}),
        ("CAP_SYSLOG", {"syslog"}),
        ("CAP_BPF", {"bpf"}),
        ("CAP_PERFMON", {"perf_event_open"}),
        ("CAP_DAC_READ_SEARCH", {"open_by_handle_at"}),
        ("CAP_SYS_TTY_CONFIG", {"vhangup"}),
    ],
)
def test_capability_gated_syscalls(capability: str, syscalls: set[str]) -> None:
    without = allowed(default_profile(DEFAULT, "x86_64"))
    with_cap = allowed(default_profile(DEFAULT | {capability}, "x86_64"))
    assert not syscalls & without
    assert syscalls <= with_cap


def test_chroot_follows_sys_chroot() -> None:
    assert "chroot" not in allowed(default_profile(DEFAULT - {"CAP_SYS_CHROOT"}, "x86_64"))


def test_personality_only_for_safe_personas() -> None:
    profile = default_profile(DEFAULT, "x86_64")
    values = sorted(rule["args"][0]["value"] for rule in rules_for(profile, "personality"))
    assert values == [0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF]


def test_vsock_sockets_are_refused() -> None:
    (rule,) = rules_for(default_profile(DEFAULT, "x86_64"), "socket")
    assert rule["args"] == [{"index": 0, "value": 40, "valueTwo": 0, "op": "SCMP_CMP_NE"}]


def test_resolved_profile_has_no_docker_only_fields() -> None:
    profile: dict[str, Any] = default_profile(set(KNOWN_CAPABILITIES), "x86_64")
    assert "archMap" not in profile
    for rule in profile["syscalls"]:
        assert set(rule) <= {"names", "action", "args", "errnoRet"}
    json.dumps(profile)  # plain JSON data


def test_docker_format_profile_keeps_its_conditions() -> None:
    profile: dict[str, Any] = docker_default_profile()
    assert any("includes" in rule for rule in profile["syscalls"])


def test_custom_profile_is_resolved_like_the_default() -> None:
    text = json.dumps(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["X"]}},
            ],
        }
    )
    resolved = resolve_profile(load_profile(text), DEFAULT, "x86_64")
    assert resolved == {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }


def test_bad_custom_profiles_are_refused() -> None:
    with pytest.raises(InvalidParameter, match="Decoding seccomp profile failed"):
        load_profile("{not json")
    with pytest.raises(InvalidParameter, match="defaultAction"):
        resolve_profile({"syscalls": []}, DEFAULT, "x86_64")
    with pytest.raises(InvalidParameter, match="architectures"):
        resolve_profile(
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": [], "archMap": []},
            DEFAULT,
            "x86_64",
        )
    with pytest.raises(InvalidParameter, match="name"):
        resolve_profile(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}],
            },
            DEFAULT,
            "x86_64",
        )
