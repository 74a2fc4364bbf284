"""What the image unit tests share: an index, content store, snapshots and layer
bookkeeping in a temporary directory."""

from __future__ import annotations

from pathlib import Path

from essaim.image.content import ContentStore
from essaim.image.index import ImageIndex
from essaim.image.layers import Layers
from essaim.image.snapshot import Snapshotter


class Disk:
    """An index, a content store and snapshots in a temporary directory."""

    def __init__(self, root: Path) -> None:
        self.index = ImageIndex()
        self.content = ContentStore(root / "content")
        self.snapshots = Snapshotter(root / "snapshots")
        self.layers = Layers(self.index, self.content, self.snapshots)
