"""Docker's rules for the paths of the archive API, as pure functions: container paths as
clients give them, tar entry names and link targets, and Go's os.FileMode bits.
"""

from __future__ import annotations

import stat

from essaim.errors import InvalidParameter

# Resolution in a root is shared with layer unpacking and `docker load`; re-exported.
from essaim.image.scoped_paths import MAX_SYMLINKS as MAX_SYMLINKS
from essaim.image.scoped_paths import clean_parts as clean_parts
from essaim.image.scoped_paths import follow_in_scope as follow_in_scope

# Go's os.FileMode type bits (io/fs): the CLI reads the stat header's `mode` with them.
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_NAMED_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHAR_DEVICE = 1 << 21
GO_MODE_STICKY = 1 << 20
GO_MODE_IRREGULAR = 1 << 19


class Breakout(InvalidParameter):
    """A tar entry (its name or its link) that would leave the extraction directory."""


def go_file_mode(st_mode: int) -> int:
    """`st_mode` as Go's os.FileMode: permission bits plus type and special bits."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    if kind == stat.S_IFDIR:
        mode |= GO_MODE_DIR
    elif kind == stat.S_IFLNK:
        mode |= GO_MODE_SYMLINK
    elif kind == stat.S_IFBLK:
        mode |= GO_MODE_DEVICE
    elif kind == stat.S_IFCHR:
        mode |= GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE
    elif kind == stat.S_IFIFO:
        mode |= GO_MODE_NAMED_PIPE
    elif kind == stat.S_IFSOCK:
        mode |= GO_MODE_SOCKET
    elif kind != stat.S_IFREG:
        mode |= GO_MODE_IRREGULAR
    if st_mode & stat.S_ISUID:
        mode |= GO_MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= GO_MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= GO_MODE_STICKY
    return mode


def go_base(path: str) -> str:
    """Go's filepath.Base: the last element, trailing slashes ignored; `/` for the root."""
    if not path:
        return "."
    stripped = path.rstrip("/")
    if not stripped:
        return "/"
    return stripped.rpartition("/")[2]


def container_path(path: str) -> str:
    """`path` as an absolute, cleaned container path that keeps a trailing `/` or `/.`:
    clients give them meaning (moby's PreserveTrailingDotOrSeparator)."""
    if not path:
        raise InvalidParameter("Path cannot be empty")
    cleaned = "/" + "/".join(clean_parts(path))
    if go_base(cleaned) != "." and go_base(path) == ".":
        cleaned += ("" if cleaned.endswith("/") else "/") + "."
    if not cleaned.endswith("/") and path.endswith("/"):
        cleaned += "/"
    return cleaned


def split_last(abs_path: str) -> tuple[list[str], str | None]:
    """The directory to resolve (every symlink followed in the root) and the last name,
    looked at without following it; None when the path names a directory itself (`/`,
    a trailing `/` or `/.`), which is then followed too (moby's ResolvePath)."""
    parts = clean_parts(abs_path)
    if not parts or abs_path.endswith("/") or abs_path.endswith("/."):
        return parts, None
    return parts[:-1], parts[-1]


def entry_parts(name: str, dest: str) -> list[str]:
    """A tar entry's name as components under the extraction directory `dest` (a container
    path). An absolute name is taken from `dest` too; `..` climbing out is a breakout,
    refused as moby's Unpack does."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise Breakout(f"{quote(name)} is outside of {quote(dest)}")
            parts.pop()
            continue
        parts.append(part)
    return parts


def check_symlink(entry: list[str], linkname: str, dest: str) -> None:
    """Refuse a symlink whose target, taken from its directory, climbs out of `dest`
    (moby's createTarFile check). Absolute targets stay: they are read in the root."""
    if linkname.startswith("/"):
        return
    depth = len(entry) - 1
    for part in linkname.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                path = "/".join([dest.rstrip("/"), *entry])
                raise Breakout(f"invalid symlink {quote(path)} -> {quote(linkname)}")
        elif part not in ("", "."):
            depth += 1


def hardlink_parts(linkname: str, dest: str) -> list[str]:
    """A hard link's target, which tar names from the extraction directory."""
    try:
        parts = entry_parts(linkname, dest)
    except Breakout:
        raise Breakout(f"invalid hardlink {quote(linkname)}: outside of {quote(dest)}") from None
    if not parts:
        raise Breakout(f"invalid hardlink {quote(linkname)}")
    return parts


def archive_prefix(abs_path: str) -> str:
    """The first component of the entries a GET of `abs_path` sends: the name the client
    asked for, even when a symlink led elsewhere; `.` sends a directory's contents and
    the root's entries start at `/` (moby's TarResourceRebaseOpts)."""
    base = go_base(abs_path)
    return "" if base == "/" else base


def entry_name(prefix: str, rel: list[str], is_dir: bool) -> str:
    """The tar name of `rel` (components under the archived path) under `prefix`."""
    if prefix == ".":
        name = "/".join(rel) if rel else "."
    elif prefix == "":
        name = "/" + "/".join(rel)
    else:
        name = "/".join([prefix, *rel])
    if is_dir and not name.endswith("/"):
        name += "/"
    return name


def quote(text: str) -> str:
    """Go's %q for the printable texts of error messages."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
