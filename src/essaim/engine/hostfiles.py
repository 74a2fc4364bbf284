"""The files Docker bind-mounts into every container: /etc/hostname, /etc/hosts and
/etc/resolv.conf, written into the container's directory.
"""

from __future__ import annotations

from pathlib import Path

HOSTS_BASE = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def write_host_files(container_dir: Path, hostname: str, domainname: str = "") -> None:
    (container_dir / "hostname").write_text(hostname + "\n")
    (container_dir / "hosts").write_text(HOSTS_BASE)
    try:
        resolv = Path("/etc/resolv.conf").read_text()
    except OSError:
        resolv = ""
    # A loopback resolver of the host is unreachable from the container's namespace.
    lines = [ln for ln in resolv.splitlines() if not ln.strip().startswith("nameserver 127.")]
    (container_dir / "resolv.conf").write_text("\n".join(lines) + ("\n" if lines else ""))


def host_file_mounts(container_dir: Path) -> list[tuple[str, str]]:
    """(source, destination) pairs for the bundle's bind mounts."""
    return [
        (str(container_dir / "resolv.conf"), "/etc/resolv.conf"),
        (str(container_dir / "hostname"), "/etc/hostname"),
        (str(container_dir / "hosts"), "/etc/hosts"),
    ]
