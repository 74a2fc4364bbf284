"""Performing a COPY or ADD into a stage's root file system with the classic builder's
semantics: where each source lands, who owns what, and ADD's extraction of local tar
archives. The executor has resolved the sources and mounted the root; this blocks.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from essaim.build.placement import Placement, is_directory, make_dirs, show
from essaim.build.sources import CopySource, open_source
from essaim.engine.extract import ExtractOptions, extract
from essaim.engine.in_root import open_root, readlink_in_root
from essaim.errors import InvalidParameter
from essaim.image.archive import open_decompressed
from essaim.image.scoped_paths import clean_parts, follow_in_scope

ROOT_IDS = (0, 0)


@dataclass(frozen=True)
class CopyOptions:
    chown: tuple[int, int] | None = None  # resolved ids, or None
    chmod: int | None = None
    preserve_ownership: bool = False  # COPY --from without --chown
    decompress: bool = False  # ADD: extract local archives


def normalize_dest(workdir: str, dest: str) -> str:
    """moby's normalizeDest: a relative destination is taken from the working directory
    (cleaned, a trailing `/` kept); an absolute one is used as written."""
    if dest.startswith("/"):
        return dest
    joined = "/" + "/".join(clean_parts(f"{workdir}/{dest}"))
    return joined + "/" if dest.endswith("/") else joined


def perform_copy(
    dest_root: Path, sources: list[CopySource], dest: str, options: CopyOptions
) -> None:
    """Copy `sources` to `dest` (normalize_dest's result) inside `dest_root`. A file goes
    inside `dest` when it ends with `/` or is a directory, else becomes `dest`; a
    directory's contents go into `dest`. Entries get `--chown`'s ids, the source's with
    `preserve_ownership`, else root's; `--chmod` sets every copied entry's mode."""
    owner = options.chown
    if owner is None and not options.preserve_ownership:
        owner = ROOT_IDS
    root_fd = open_root(str(dest_root))
    try:
        # Every symlink of the destination, the last one too, is followed in the root.
        dest_parts = follow_in_scope(clean_parts(dest), lambda p: readlink_in_root(root_fd, p))
        for source in sources:
            placement = Placement(root_fd, owner, options.chmod)
            if source.is_dir:
                _copy_directory(placement, source, dest_parts)
            else:
                _copy_file(placement, source, dest, dest_parts, options.decompress)
    finally:
        os.close(root_fd)


def _copy_directory(placement: Placement, source: CopySource, dest_parts: list[str]) -> None:
    """The directory's contents into `dest_parts`, made (root's, 0755) when missing; a
    directory made so is then given the copied entries' owner (and `--chmod`)."""
    existed = is_directory(placement.root_fd, dest_parts)
    dst = make_dirs(placement.root_fd, dest_parts, ROOT_IDS)
    try:
        src = open_source(source, os.O_RDONLY | os.O_DIRECTORY)
        try:
            placement.contents(src, dst, dest_parts)
        finally:
            os.close(src)
        if not existed:
            if placement.owner is not None:
                os.fchown(dst, *placement.owner)
            if placement.chmod is not None:
                os.fchmod(dst, placement.chmod)
    finally:
        os.close(dst)


def _copy_file(
    placement: Placement, source: CopySource, dest: str, dest_parts: list[str], decompress: bool
) -> None:
    src = open_source(source, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(src)
        if decompress and not source.url and _is_archive(src, st):
            _extract_archive(placement.root_fd, src, dest_parts)
            return
        target = dest_parts
        if dest.endswith("/") or is_directory(placement.root_fd, dest_parts):
            target = [*dest_parts, source.base_name]
        # Directories made on the way belong to the copied file's owner (moby's
        # MkdirAllAndChownNew with the chown identity).
        parent = make_dirs(placement.root_fd, target[:-1], placement.owner)
        try:
            if stat.S_ISREG(st.st_mode):
                placement.file(src, st, parent, target[-1])
            else:
                placement.node(st, parent, target[-1])
        finally:
            os.close(parent)
    finally:
        os.close(src)


def _is_archive(fd: int, st: os.stat_result) -> bool:
    """moby's archive.IsArchivePath: a regular file whose bytes, once decompressed
    (gzip, bzip2, xz, zstd), start with a valid tar header."""
    if not stat.S_ISREG(st.st_mode):
        return False
    try:
        with open(os.dup(fd), "rb") as f:
            stream = open_decompressed(f)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                return tar.next() is not None
    except (tarfile.TarError, InvalidParameter, EOFError, ValueError):
        return False
    finally:
        os.lseek(fd, 0, os.SEEK_SET)  # the duplicate shared the offset: copy from the start


def _extract_archive(root_fd: int, src: int, dest_parts: list[str]) -> None:
    """The archive's entries into the directory `dest_parts` (made, root's, when
    missing) with the archive's own owners and modes, as moby's UntarPath: `--chown`
    and `--chmod` do not reach inside an extracted archive."""
    os.close(make_dirs(root_fd, dest_parts, ROOT_IDS))
    os.lseek(src, 0, os.SEEK_SET)
    with open(os.dup(src), "rb") as f, contextlib.closing(open_decompressed(f)) as stream:
        extract(root_fd, show(dest_parts), stream, ExtractOptions())
