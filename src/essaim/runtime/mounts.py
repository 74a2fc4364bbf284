"""The filesystems mounted into every container (Docker's defaults) and the caller's extras.

Extras replace a default at the same destination and are ordered parents first.
"""

import posixpath

import msgspec

from essaim.errors import InvalidParameter


class Mount(msgspec.Struct, frozen=True):
    """One OCI mount: where in the container, what, and how."""

    destination: str
    source: str
    type: str = "bind"
    options: list[str] = []

    def to_oci(self) -> dict[str, object]:
        return {
            "destination": self.destination,
            "type": self.type,
            "source": self.source,
            "options": list(self.options),
        }


def bind_mount(source: str, destination: str, *, readonly: bool = False) -> Mount:
    """A private recursive bind, as Docker makes for /etc/hosts, /etc/hostname and the like."""
    options = ["rbind", "rprivate"]
    if readonly:
        options.append("ro")
    return Mount(destination, source, "bind", options)


# Docker's default size of /dev/shm: 64 MiB.
DEFAULT_SHM_SIZE = 64 * 1024 * 1024

# Destinations that stay writable even with a read-only rootfs: the container needs them
# to run at all (ptys, shared memory, message queues), and /proc is protected otherwise.
_WRITABLE_WITH_READONLY_ROOT = frozenset({"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"})


def default_mounts(*, privileged: bool, shm_size: int = DEFAULT_SHM_SIZE) -> list[Mount]:
    """Docker's standard container filesystems."""
    # A privileged container may write to /sys and to its cgroup mount (it can remount
    # them anyway); everyone else gets them read-only.
    sys_mode = [] if privileged else ["ro"]
    return [
        Mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        Mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        Mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        Mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", *sys_mode]),
        Mount("/sys/fs/cgroup", "cgroup", "cgroup", [*sys_mode, "nosuid", "noexec", "nodev"]),
        Mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        Mount(
            "/dev/shm",
            "shm",
            "tmpfs",
            ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"],
        ),
    ]


def _depth(destination: str) -> int:
    return len(posixpath.normpath(destination).split("/"))


def container_mounts(
    extra: list[Mount], *, privileged: bool, readonly_rootfs: bool, shm_size: int
) -> list[dict[str, object]]:
    """The OCI `mounts` list: defaults not overridden, then the extras, parents first."""
    for mount in extra:
        if not posixpath.isabs(mount.destination):
            raise InvalidParameter(
                f"invalid mount config: mount path must be absolute: {mount.destination}"
            )
    if shm_size <= 0:
        raise InvalidParameter("SHM size can not be less than 0")
    taken = {posixpath.normpath(m.destination) for m in extra}
    result: list[Mount] = []
    for mount in default_mounts(privileged=privileged, shm_size=shm_size):
        if mount.destination in taken:
            continue
        if (
            readonly_rootfs
            and mount.destination not in _WRITABLE_WITH_READONLY_ROOT
            and "ro" not in mount.options
        ):
            mount = Mount(mount.destination, mount.source, mount.type, [*mount.options, "ro"])
        result.append(mount)
    # sorted() is stable: mounts at the same depth keep the caller's order.
    result += sorted(extra, key=lambda m: _depth(m.destination))
    return [mount.to_oci() for mount in result]
