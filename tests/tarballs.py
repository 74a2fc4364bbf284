"""Tar archives in memory for unit and integration tests: layer tars made from files,
and an archive's members read back by name.
"""

from __future__ import annotations

import io
import tarfile


def layer_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar of regular files, in this order, every time stamp 0: the same
    files give the same bytes, hence the same digest."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def members(archive: bytes) -> dict[str, bytes | None]:
    """Each member's bytes by name, in the archive's order (None for what is not a
    regular file)."""
    out: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar:
            data = tar.extractfile(member)
            out[member.name] = data.read() if data is not None else None
    return out
