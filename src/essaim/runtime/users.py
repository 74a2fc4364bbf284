"""Resolve Docker's --user and --group-add against a container's own /etc/passwd and /etc/group.

The files are read inside the rootfs: symlinks are followed as the container would see
them (an absolute target starts again at the rootfs), never out to the host's files.
"""

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from essaim.errors import InvalidParameter

# The kernel accepts 32-bit ids, but -1 ((uid_t)-1) means "unchanged"; Docker caps at 2^31-1.
MAX_ID = 2**31 - 1
# More than any real passwd file; a bigger one is a hostile or broken image.
MAX_FILE_BYTES = 16 * 1024 * 1024
# The kernel's limit on symlinks followed in one lookup.
MAX_SYMLINKS = 40


class ResolvedUser(msgspec.Struct, frozen=True):
    uid: int
    gid: int
    additional_gids: list[int] = []


class _PasswdEntry(msgspec.Struct, frozen=True):
    name: str
    uid: int
    gid: int


class _GroupEntry(msgspec.Struct, frozen=True):
    name: str
    gid: int
    members: list[str]


def _open_in_root(root_fd: int, relative: str) -> int | None:
    """Open `relative` for reading as if `root_fd` were "/"; None when it does not exist."""
    # A stack of directory fds along the resolved path; index 0 is the root itself and
    # ".." never climbs above it, like chroot's lookup.
    stack = [root_fd]
    pending = [part for part in reversed(relative.split("/")) if part not in ("", ".")]
    followed = 0
    try:
        while pending:
            name = pending.pop()
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            here = stack[-1]
            try:
                info = os.stat(name, dir_fd=here, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                return None
            if stat.S_ISLNK(info.st_mode):
                followed += 1
                if followed > MAX_SYMLINKS:
                    raise InvalidParameter(f"too many levels of symbolic links in /{relative}")
                target = os.readlink(name, dir_fd=here)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
                continue
            # O_NOFOLLOW: if the entry was swapped for a symlink since the stat, fail
            # rather than follow it out of the root.
            if pending:
                if not stat.S_ISDIR(info.st_mode):
                    return None
                flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                stack.append(os.open(name, flags, dir_fd=here))
                continue
            if not stat.S_ISREG(info.st_mode):
                # A fifo or device would block or stream forever; it is no passwd file.
                return None
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            return os.open(name, flags, dir_fd=here)
        return None
    finally:
        for fd in stack[1:]:
            os.close(fd)


def read_file_in_root(rootfs: Path, path: str) -> str | None:
    """The text of `path` inside `rootfs`, or None when the container has no such file."""
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = _open_in_root(root_fd, path)
    finally:
        os.close(root_fd)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise InvalidParameter(f"{path} in the container is larger than {MAX_FILE_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


def _records(text: str | None, fields: int) -> Iterator[list[str]]:
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        yield parts + [""] * (fields - len(parts))


def _parse_passwd(text: str | None) -> list[_PasswdEntry]:
    entries = []
    for parts in _records(text, 7):
        try:
            entries.append(_PasswdEntry(parts[0], int(parts[2]), int(parts[3])))
        except ValueError:
            continue  # A malformed line matches nothing, as in libc.
    return entries


def _parse_group(text: str | None) -> list[_GroupEntry]:
    entries = []
    for parts in _records(text, 4):
        try:
            gid = int(parts[2])
        except ValueError:
            continue
        members = [m.strip() for m in parts[3].split(",") if m.strip()]
        entries.append(_GroupEntry(parts[0], gid, members))
    return entries


def _numeric(value: str) -> int | None:
    # Docker accepts only plain decimal digits as a number; "+1" or " 1" are names.
    if not value.isascii() or not value.isdigit():
        return None
    return int(value)


def _checked_id(value: int) -> int:
    if value > MAX_ID:
        raise InvalidParameter(f"uids and gids must be in range 0-{MAX_ID}")
    return value


def _find_group(groups: list[_GroupEntry], wanted: str) -> _GroupEntry | None:
    number = _numeric(wanted)
    for group in groups:
        if (number is not None and group.gid == number) or (
            number is None and group.name == wanted
        ):
            return group
    return None


def resolve_user(rootfs: Path, user: str, group_add: Sequence[str] = ()) -> ResolvedUser:
    """Docker's `--user` ("", name, uid, uid:gid, name:group, uid:group) plus `--group-add`.

    A name must exist in the container's passwd (or group) file; a number need not. An
    implicit group takes the passwd entry's gid and adds the groups listing the user as a
    member; an explicit group replaces the gid and adds no member groups.
    """
    user_part, _, group_part = user.partition(":")
    passwd = _parse_passwd(read_file_in_root(rootfs, "etc/passwd"))

    uid_number = _numeric(user_part)
    if user_part == "":
        # No --user: root, described by whatever entry the image has for uid 0.
        match = next((e for e in passwd if e.uid == 0), None)
        uid, gid = 0, 0
    elif uid_number is not None:
        match = next((e for e in passwd if e.uid == uid_number), None)
        uid, gid = _checked_id(uid_number), 0
    else:
        match = next((e for e in passwd if e.name == user_part), None)
        if match is None:
            raise InvalidParameter(
                f"unable to find user {user_part}: no matching entries in passwd file"
            )
        uid, gid = match.uid, 0
    if match is not None:
        uid, gid = match.uid, match.gid

    needs_groups = group_part != "" or match is not None or bool(group_add)
    groups = _parse_group(read_file_in_root(rootfs, "etc/group")) if needs_groups else []

    additional: list[int] = []
    if group_part:
        group = _find_group(groups, group_part)
        if group is not None:
            gid = group.gid
        else:
            number = _numeric(group_part)
            if number is None:
                raise InvalidParameter(
                    f"unable to find group {group_part}: no matching entries in group file"
                )
            gid = _checked_id(number)
    elif match is not None:
        additional = [g.gid for g in groups if match.name in g.members]

    for wanted in group_add:
        group = _find_group(groups, wanted)
        if group is not None:
            extra = group.gid
        else:
            number = _numeric(wanted)
            if number is None:
                # runc's GetAdditionalGroups words it so (capital and all).
                raise InvalidParameter(f"Unable to find group {wanted}")
            extra = _checked_id(number)
        additional.append(extra)

    # moby lists the primary group first: `id` shows it among the groups, as under Docker.
    return ResolvedUser(uid, gid, list(dict.fromkeys([gid, *additional])))
