"""tmpfs mounts as dockerd makes them: `--tmpfs` option strings merged over Docker's
defaults (the last of each kind wins), and `--mount type=tmpfs` options converted.
"""

from __future__ import annotations

import posixpath

from essaim.errors import InvalidParameter
from essaim.model.mount import TmpfsOptions

# Every tmpfs starts from these, as under dockerd; the user's options override them.
DEFAULT_OPTIONS = ("noexec", "nosuid", "nodev", "rprivate")

_PROPAGATION = "propagation"
# Flag options and the mount flag each sets or clears: the last one per flag wins.
_FLAGS = {
    "ro": "rdonly", "rw": "rdonly", "suid": "nosuid", "nosuid": "nosuid",
    "dev": "nodev", "nodev": "nodev", "exec": "noexec", "noexec": "noexec",
    "sync": "sync", "async": "sync", "dirsync": "dirsync", "remount": "remount",
    "mand": "mand", "nomand": "mand", "atime": "noatime", "noatime": "noatime",
    "diratime": "nodiratime", "nodiratime": "nodiratime", "bind": "bind", "rbind": "rbind",
    "relatime": "relatime", "norelatime": "relatime",
    "strictatime": "strictatime", "nostrictatime": "strictatime",
    "unbindable": _PROPAGATION, "runbindable": _PROPAGATION, "private": _PROPAGATION,
    "rprivate": _PROPAGATION, "shared": _PROPAGATION, "rshared": _PROPAGATION,
    "slave": _PROPAGATION, "rslave": _PROPAGATION,
}  # fmt: skip
_DATA_KEYS = frozenset({"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"})


def _go_quoted_list(parts: list[str]) -> str:
    return "[" + " ".join(f'"{p}"' for p in parts) + "]"


def merge_options(options: list[str]) -> list[str]:
    """moby's MergeTmpfsOptions: one option per flag and per data key, the last given
    winning, in the order of the winners."""
    flags_seen: set[str] = set()
    data_seen: set[str] = set()
    merged: list[str] = []
    for option in reversed(options):
        if option == "defaults":
            continue
        flag = _FLAGS.get(option)
        if flag is not None:
            if flag not in flags_seen:
                flags_seen.add(flag)
                merged.append(option)
            continue
        key, sep, value = option.partition("=")
        if not sep or key not in _DATA_KEYS:
            parts = [key, value] if sep else [key]
            raise InvalidParameter(f"invalid tmpfs option {_go_quoted_list(parts)}")
        if key not in data_seen:
            data_seen.add(key)
            merged.append(option)
    merged.reverse()
    return merged


def oci_options(data: str) -> list[str]:
    """The OCI options of a tmpfs mount whose user options are `data` ("size=1m,exec")."""
    return merge_options([*DEFAULT_OPTIONS, *(o for o in data.split(",") if o)])


def validate_destination(destination: str) -> None:
    if posixpath.normpath(destination.replace("\\", "/")) == "/":
        raise InvalidParameter("invalid specification: destination can't be '/'")
    if not posixpath.isabs(destination):
        raise InvalidParameter(f"invalid mount path: '{destination}' mount path must be absolute")


def validate_tmpfs(tmpfs: dict[str, str]) -> None:
    """`HostConfig.Tmpfs` (`--tmpfs /path[:options]`): checked before anything is made."""
    for destination, data in tmpfs.items():
        validate_destination(destination)
        oci_options(data)


def convert_options(options: TmpfsOptions | None, read_only: bool) -> str:
    """moby's ConvertTmpfsOptions: `--mount type=tmpfs` options as a tmpfs option string,
    the size with the largest unit that divides it."""
    raw: list[str] = ["ro"] if read_only else []
    if options is not None and options.mode:
        raw.append(f"mode={options.mode:o}")
    if options is not None and options.size_bytes:
        size, suffix = options.size_bytes, ""
        for unit, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % divisor == 0:
                size, suffix = size // divisor, unit
                break
        raw.append(f"size={size}{suffix}")
    return ",".join(raw)
