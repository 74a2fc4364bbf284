"""What `docker history` shows: an image's history entries newest first, with layer
sizes, and the ids and tags of the image and its local ancestors filled in from the top.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from essaim.errors import SystemError_
from essaim.image import reference
from essaim.model.image import Image


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One line of `docker history`, newest first."""

    id: str  # the image id, or "<missing>" for layers with no local image
    created: str
    created_by: str
    tags: list[str]  # familiar names
    size: int
    comment: str


def history_rows(image: Image, local_image: Callable[[str], Image | None]) -> list[HistoryRow]:
    """The rows of `image`; `local_image` finds an ancestor by id (None if not here)."""
    rows: list[HistoryRow] = []
    layer = 0
    for entry in image.history:
        size = 0
        if not entry.empty_layer:
            if layer >= len(image.diff_ids):
                raise SystemError_("too many non-empty layers in History section")
            size = image.layer_sizes[layer] if layer < len(image.layer_sizes) else 0
            layer += 1
        rows.insert(
            0, HistoryRow("<missing>", entry.created, entry.created_by, [], size, entry.comment)
        )
    current: Image | None = image
    for i, row in enumerate(rows):
        if current is None:
            break
        tags = [reference.familiar(t) for t in current.repo_tags]
        rows[i] = HistoryRow(current.id, row.created, row.created_by, tags, row.size, row.comment)
        current = local_image(current.parent) if current.parent else None
    return rows
