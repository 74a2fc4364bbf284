"""Compat ABIs the kernel does not run are told apart, and left out of seccomp filters."""

import gzip
from pathlib import Path

import pytest

from essaim.runtime.abis import missing_compat_abis
from essaim.runtime.capabilities import DEFAULT_CAPABILITIES
from essaim.runtime.seccomp import default_profile, resolve_profile

pytestmark = pytest.mark.unit


def status_file(tmp_path: Path, seccomp_mode: int) -> Path:
    path = tmp_path / "status"
    path.write_text(f"Name:\tessaimd\nSeccomp:\t{seccomp_mode}\nSeccomp_filters:\t0\n")
    return path


def test_other_machines_have_no_compat_abi_probed(tmp_path: Path) -> None:
    assert missing_compat_abis("aarch64", status_file(tmp_path, 0)) == frozenset()


def test_a_daemon_under_seccomp_keeps_every_abi(tmp_path: Path) -> None:
    # Probing an x32 syscall under a filter without x32 would kill the daemon.
    assert missing_compat_abis("x86_64", status_file(tmp_path, 2)) == frozenset()


def test_x32_probe_agrees_with_the_kernel_config(tmp_path: Path) -> None:
    config = Path("/proc/config.gz")
    if not config.exists():
        pytest.skip("the kernel does not publish its config")
    built_in = b"CONFIG_X86_X32_ABI=y" in gzip.decompress(config.read_bytes())
    missing = missing_compat_abis("x86_64", status_file(tmp_path, 0))
    if not built_in:
        assert missing == {"SCMP_ARCH_X32"}
    else:  # built in, but a boot flag may still turn it off
        assert missing <= {"SCMP_ARCH_X32"}


def test_missing_abis_are_left_out_of_the_default_profile() -> None:
    caps = set(DEFAULT_CAPABILITIES)
    profile = default_profile(caps, "x86_64", missing_abis={"SCMP_ARCH_X32"})
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]


def test_missing_abis_are_left_out_of_a_custom_profile() -> None:
    custom = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
        "syscalls": [],
    }
    resolved = resolve_profile(custom, set(), "x86_64", missing_abis={"SCMP_ARCH_X32"})
    assert resolved["architectures"] == ["SCMP_ARCH_X86_64"]
