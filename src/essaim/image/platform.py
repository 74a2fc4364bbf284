"""The host's platform in OCI words (architecture, variant, os), for new images."""

from __future__ import annotations

import platform as _platform

_ARCHITECTURES = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


def host_platform() -> tuple[str, str, str]:
    """(architecture, variant, os) of this machine, e.g. ("amd64", "", "linux")."""
    machine = _platform.machine().lower()
    architecture, variant = _ARCHITECTURES.get(machine, (machine, ""))
    return architecture, variant, "linux"
