"""Platforms as containerd names them (`linux/arm64/v8`): this host's, parsing the
`platform=` parameter, normalising architectures and variants, and picking the manifest
of an index that runs here (pull and load alike).
"""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass
from typing import Any

from essaim.errors import InvalidParameter

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

_KNOWN_OS = frozenset(
    {"aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js",
     "linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "windows", "zos"}
)  # fmt: skip
_KNOWN_ARCH = frozenset(
    {"386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le",
     "loong64", "mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc",
     "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)

    def wire(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out


def normalize(os_name: str, arch: str, variant: str) -> Platform:
    """containerd's Normalize: `x86_64` is amd64, `aarch64` arm64 (v8 is no variant),
    a bare `arm` is v7."""
    os_name = os_name.lower()
    arch = arch.lower()
    variant = variant.lower()
    if arch in ("i386",):
        arch = "386"
    elif arch in ("x86_64", "x86-64", "amd64"):
        arch = "amd64"
        variant = "" if variant == "v1" else variant
    elif arch in ("aarch64", "arm64"):
        arch = "arm64"
        variant = "" if variant in ("8", "v8") else variant
    elif arch == "armhf":
        arch, variant = "arm", "v7"
    elif arch == "armel":
        arch, variant = "arm", "v6"
    elif arch == "arm":
        variant = {"": "v7", "5": "v5", "6": "v6", "7": "v7", "8": "v8"}.get(variant, variant)
    return Platform(os_name, arch, variant)


def host_platform() -> tuple[str, str, str]:
    """(architecture, variant, os) of this machine, e.g. ("amd64", "", "linux"), for
    the config of images made here."""
    machine = _platform.machine().lower()
    architecture, variant = _ARCHITECTURES.get(machine, (machine, ""))
    return architecture, variant, "linux"


def host() -> Platform:
    architecture, variant, os_name = host_platform()
    return normalize(os_name, architecture, variant)


def parse(text: str) -> Platform:
    """`os[/arch[/variant]]` or a lone architecture, as containerd's platforms.Parse."""
    if "*" in text:
        raise InvalidParameter(f'"{text}": wildcards not yet supported: invalid argument')
    parts = text.split("/")
    if any(not p for p in parts) or len(parts) > 3:
        raise InvalidParameter(
            f'"{text}": unknown operating system or architecture: invalid argument'
        )
    if len(parts) == 1:
        only = parts[0].lower()
        if only in _KNOWN_OS:
            current = host()
            return Platform(only, current.architecture, current.variant)
        candidate = normalize("linux", only, "")
        if candidate.architecture not in _KNOWN_ARCH:
            raise InvalidParameter(
                f'"{text}": unknown operating system or architecture: invalid argument'
            )
        return candidate
    variant = parts[2] if len(parts) == 3 else ""
    return normalize(parts[0], parts[1], variant)


def from_descriptor(raw: Any) -> Platform | None:
    if not isinstance(raw, dict):
        return None
    os_name, arch = raw.get("os"), raw.get("architecture")
    if not isinstance(os_name, str) or not isinstance(arch, str):
        return None
    variant = raw.get("variant")
    return normalize(os_name, arch, variant if isinstance(variant, str) else "")


def matches(wanted: Platform, offered: Platform) -> bool:
    """containerd's Only(): same os and architecture; a wanted variant takes itself or
    an older one (arm v7 runs v6 and v5), no variant wanted takes any."""
    if wanted.os != offered.os or wanted.architecture != offered.architecture:
        return False
    if not wanted.variant or wanted.variant == offered.variant:
        return True
    if wanted.architecture == "arm" and offered.variant in ("v5", "v6", "v7", "v8"):
        return offered.variant <= wanted.variant
    return False


def choose(wanted: Platform, entries: list[tuple[Platform | None, Any]]) -> Any | None:
    """The entry for `wanted`: an exact variant before a compatible one, the index's
    order otherwise."""
    candidates = [(p, e) for p, e in entries if p is not None and matches(wanted, p)]
    if not candidates:
        return None
    exact = [e for p, e in candidates if p.variant == wanted.variant]
    return exact[0] if exact else candidates[0][1]
