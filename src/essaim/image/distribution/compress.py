"""Layers compressed for a registry: an uncompressed layer blob gzipped the same way
every time (no name, mtime 0, one fixed level), so pushing it twice makes one digest.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil

from essaim.image.content import CHUNK, ContentStore

# Go's gzip.DefaultCompression, what dockerd pushes with.
LEVEL = 6


def gzip_blob(content: ContentStore, digest: str) -> tuple[str, int]:
    """Store the gzip of blob `digest`; (its digest, its size). Blocking."""
    temp = content.temp_file(".gz")
    try:
        with (
            content.open(digest) as source,
            temp.open("wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=LEVEL, mtime=0) as out,
        ):
            shutil.copyfileobj(source, out, CHUNK)
        return content.adopt(temp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
