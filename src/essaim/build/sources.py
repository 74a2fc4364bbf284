"""The sources of a COPY or ADD: their names resolved inside a root (the build context,
or an earlier stage's or an image's file system) by the classic builder's rules, with
Docker's messages, and the cache key (`file:`, `dir:`, `multi:`) of what they hold.

Everything here blocks; the executor runs it in its thread pool.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from essaim.build.source_digest import file_digest, sorted_entries, tree_digest
from essaim.build.wildcards import contains_wildcards, fixed_depth, go_match, literal_prefix
from essaim.engine.in_root import open_in_root, open_root
from essaim.errors import InvalidParameter, NotFound
from essaim.image.scoped_paths import follow_in_scope

# A downloaded file whose name neither its URL nor the server gave (moby's name).
UNNAMED = "__unnamed__"
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class CopySource:
    path: Path  # absolute host path of the resolved source (inside its root)
    name: str  # its path relative to the root as written, cleaned ("" for the root)
    is_dir: bool
    url: str = ""  # ADD URL sources: filled after download
    # The root `path` was resolved in, reopened inside it when read (None: `path` is
    # opened as it is, as for a downloaded file).
    root: Path | None = None
    # A downloaded file's sha256, known from the download: not read again to hash it.
    content_sha256: str = ""

    @property
    def base_name(self) -> str:
        """The name the source gets when copied into a directory: the last component
        of the name it was given (a symlink's own name, not its target's)."""
        return self.name.rpartition("/")[2] or self.path.name


class _Unresolvable(Exception):
    """A component of a source path could not be looked at (not a directory, ...)."""


def go_strerror(code: int) -> str:
    """An errno's text as Go's syscall package writes it (lower case)."""
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


def is_url(text: str) -> bool:
    """moby's urlutil.IsURL: what ADD downloads instead of reading from the context."""
    return text.startswith(("http://", "https://"))


def resolve_sources(
    root: Path, patterns: list[str], *, instruction: str, from_image: bool = False
) -> list[CopySource]:
    """The sources `patterns` name inside `root`, in order, wildcards expanded in Go's
    walk order. `from_image` is for `COPY --from` (a stage or an image), where a missing
    file is not blamed on the build context. URLs are downloaded, never resolved here:
    COPY refuses them with Docker's message. A wildcard matching nothing gives nothing;
    `check_sources` then refuses an instruction left without any source."""
    sources: list[CopySource] = []
    for pattern in patterns:
        if is_url(pattern):
            if instruction == "COPY":
                raise InvalidParameter("COPY failed: source can't be a URL for COPY")
            raise ValueError(f"{pattern}: URL sources are downloaded, not resolved")
        rel = pattern.removeprefix("/").removeprefix("./")
        if contains_wildcards(rel):
            for match in _walk_matches(root, rel):
                sources.append(_resolve_one(root, match, instruction, from_image))
        else:
            sources.append(_resolve_one(root, rel, instruction, from_image))
    return sources


def check_sources(sources: list[CopySource], dest: str, *, instruction: str) -> None:
    """moby's checks of a whole instruction once every source is known (URLs included):
    at least one source, a directory destination for several, and a name for a
    download going into a directory."""
    if not sources:
        raise InvalidParameter(f"{instruction} failed: no source files were specified")
    for source in sources:
        if source.url and not source.name and dest.endswith("/"):
            raise InvalidParameter(
                f"{instruction} failed: cannot determine filename for source {source.url}"
            )
    if len(sources) > 1 and not dest.endswith("/"):
        raise InvalidParameter(
            f"When using {instruction} with more than one source file, "
            "the destination must be a directory and end with a /"
        )


def source_hash(sources: list[CopySource]) -> str:
    """The cache key of the sources: `file:<hex>` or `dir:<hex>` for one, moby's
    `multi:<hex>` over theirs for several. It changes exactly when what would be
    copied changes (names, types, modes, owners, links, contents), never with mtimes."""
    if not sources:
        raise ValueError("no sources to hash")
    keys = [_one_hash(source) for source in sources]
    if len(keys) == 1:
        return keys[0]
    return "multi:" + hashlib.sha256(",".join(keys).encode()).hexdigest()


def open_source(source: CopySource, flags: int) -> int:
    """An open descriptor of the source, looked up inside its root again (whatever
    changed since it was resolved, nothing outside the root is opened)."""
    if source.root is None:
        return os.open(source.path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    parts = source.path.relative_to(source.root).parts
    root_fd = open_root(str(source.root))
    try:
        return open_in_root(root_fd, parts, flags)
    finally:
        os.close(root_fd)


def _one_hash(source: CopySource) -> str:
    if source.is_dir:
        fd = open_source(source, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return "dir:" + tree_digest(fd)
        finally:
            os.close(fd)
    fd = open_source(source, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return "file:" + file_digest(fd, source.base_name, source.content_sha256)
    finally:
        os.close(fd)


def _resolve_one(root: Path, rel: str, instruction: str, from_image: bool) -> CopySource:
    """moby's copyInfoForFile: `rel` joined to the root (refused when that leaves it),
    every symlink followed as if the root were `/`, then looked at."""
    forbidden = InvalidParameter(
        f"{instruction} failed: forbidden path outside the build context: {rel} ()"
    )
    parts: list[str] = []
    for part in rel.split("/"):
        if part == "..":
            if not parts:
                raise forbidden
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    try:
        resolved = follow_in_scope(parts, lambda p: _readlink(root, p))
    except (_Unresolvable, InvalidParameter):
        raise forbidden from None
    path = root.joinpath(*resolved)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        missing = f"stat {rel}: file does not exist"
        if from_image:
            raise NotFound(f"{instruction} failed: {missing}") from None
        raise NotFound(
            f"{instruction} failed: file not found in build context or excluded by "
            f".dockerignore: {missing}"
        ) from None
    except OSError as exc:
        reason = go_strerror(exc.errno or 0)
        raise InvalidParameter(f"{instruction} failed: stat {rel}: {reason}") from None
    return CopySource(path, "/".join(parts), stat.S_ISDIR(st.st_mode), root=root)


def _readlink(root: Path, parts: list[str]) -> str | None:
    """The target of `parts` if it is a symlink; None when it is something else or
    absent (moby's FollowSymlinkInScope accepts missing names as they are)."""
    full = root.joinpath(*parts)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return None
    except OSError:
        raise _Unresolvable() from None
    if not stat.S_ISLNK(st.st_mode):
        return None
    return os.readlink(full)


def _walk_matches(root: Path, pattern: str) -> Iterator[str]:
    """The paths under `root` (relative, in Go's WalkDir order) that `pattern` matches.
    The walk never follows a symlink; it starts below the pattern's literal prefix and
    stops at the depth the pattern allows, which changes nothing that could match."""
    prefix = literal_prefix(pattern)
    depth = fixed_depth(pattern)
    fd = os.open(root, _OPEN_DIR)
    try:
        for part in prefix:
            try:
                child = os.open(part, _OPEN_DIR, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    return  # not a real directory: WalkDir would not enter it
                raise
            os.close(fd)
            fd = child
        start = "/".join(prefix)
        yield from _walk(fd, start + "/" if start else "", len(prefix), depth, pattern)
    finally:
        os.close(fd)


def _walk(fd: int, prefix: str, level: int, depth: int | None, pattern: str) -> Iterator[str]:
    for entry in sorted_entries(fd):
        rel = prefix + entry.name
        if go_match(pattern, rel):
            yield rel
        if (depth is None or level + 1 < depth) and entry.is_dir(follow_symlinks=False):
            with contextlib.ExitStack() as stack:
                child = os.open(entry.name, _OPEN_DIR, dir_fd=fd)
                stack.callback(os.close, child)
                yield from _walk(child, rel + "/", level + 1, depth, pattern)
