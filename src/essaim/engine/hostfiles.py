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


def write_host_files(
    container_dir: Path, hostname: str, domainname: str = "", *, host_network: bool = False
) -> None:
    """With the host's network the container sees the host's names and resolvers as
    they are; in a namespace of its own, a loopback resolver of the host is useless."""
    (container_dir / "hostname").write_text(hostname + "\n")
    hosts = _read("/etc/hosts") if host_network else ""
    (container_dir / "hosts").write_text(hosts or HOSTS_BASE)
    resolv = _read("/etc/resolv.conf")
    lines = resolv.splitlines()
    if not host_network:
        lines = [ln for ln in lines if not ln.strip().startswith("nameserver 127.")]
    (container_dir / "resolv.conf").write_text("\n".join(lines) + ("\n" if lines else ""))


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def host_file_mounts(container_dir: Path) -> list[tuple[str, str]]:
    """(source, destination) pairs for the bundle's bind mounts."""
    return [
        (str(container_dir / "resolv.conf"), "/etc/resolv.conf"),
        (str(container_dir / "hostname"), "/etc/hostname"),
        (str(container_dir / "hosts"), "/etc/hosts"),
    ]
