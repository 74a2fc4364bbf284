"""`docker history` without a daemon: rows newest first, sizes from the non-empty
layers, and ids and tags filled in from the local ancestors."""

from __future__ import annotations

import pytest

from essaim.errors import SystemError_
from essaim.image.history import HistoryRow, history_rows
from essaim.model.image import HistoryEntry, Image

BASE = Image(
    id="sha256:" + "1" * 64,
    repo_tags=["docker.io/library/busybox:latest"],
    diff_ids=["sha256:" + "a" * 64],
    layer_sizes=[100],
    history=[HistoryEntry(created="t1", created_by="ADD rootfs")],
)
TOP = Image(
    id="sha256:" + "2" * 64,
    parent=BASE.id,
    repo_tags=["docker.io/me/app:v1", "docker.io/me/app:v2"],
    diff_ids=[*BASE.diff_ids, "sha256:" + "b" * 64],
    layer_sizes=[100, 7],
    history=[
        *BASE.history,
        HistoryEntry(created="t2", created_by="ENV A=1", empty_layer=True),
        HistoryEntry(created="t3", created_by="RUN make", comment="built"),
    ],
)


def test_rows_newest_first_with_ancestors_filled_in() -> None:
    local = {BASE.id: BASE}
    assert history_rows(TOP, local.get) == [
        HistoryRow(TOP.id, "t3", "RUN make", ["me/app:v1", "me/app:v2"], 7, "built"),
        HistoryRow(BASE.id, "t2", "ENV A=1", ["busybox:latest"], 0, ""),
        HistoryRow("<missing>", "t1", "ADD rootfs", [], 100, ""),
    ]


def test_an_ancestor_not_here_leaves_its_rows_missing() -> None:
    rows = history_rows(TOP, lambda _: None)
    assert [row.id for row in rows] == [TOP.id, "<missing>", "<missing>"]


def test_more_non_empty_entries_than_layers_is_an_error() -> None:
    broken = Image(id=TOP.id, diff_ids=[], history=[HistoryEntry(created_by="RUN x")])
    with pytest.raises(SystemError_, match="too many non-empty layers"):
        history_rows(broken, lambda _: None)
