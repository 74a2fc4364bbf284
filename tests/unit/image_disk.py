"""What the image unit tests share: layer tars made in memory, and an index, content
store, snapshots and layer bookkeeping in a temporary directory."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from essaim.image.content import ContentStore
from essaim.image.index import ImageIndex
from essaim.image.layers import Layers
from essaim.image.snapshot import Snapshotter


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Disk:
    """An index, a content store and snapshots in a temporary directory."""

    def __init__(self, root: Path) -> None:
        self.index = ImageIndex()
        self.content = ContentStore(root / "content")
        self.snapshots = Snapshotter(root / "snapshots")
        self.layers = Layers(self.index, self.content, self.snapshots)
