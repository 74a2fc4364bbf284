"""Reading a container's files: the stat the CLI decodes, and tars named from the path
asked for, with every symlink read inside the root."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from essaim.engine.archive import PathNotFound, stat_path, write_export, write_path
from essaim.engine.in_root import open_root

pytestmark = pytest.mark.unit


@pytest.fixture
def root(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    base = tmp_path / "root"
    (base / "etc").mkdir(parents=True)
    (base / "etc" / "passwd").write_text("root:x:0:0\n")
    (base / "etc" / "link").symlink_to("/etc/passwd")
    (base / "escape").symlink_to(tmp_path)  # a host path: means root/<that path>
    (base / "up").symlink_to("../../../../../etc")
    fd = open_root(str(base))
    yield base, fd
    os.close(fd)


def names_of(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def tar_of(fd: int, path: str) -> bytes:
    out = io.BytesIO()
    write_path(fd, path, out)
    return out.getvalue()


def test_stat_of_a_directory_and_a_symlink(root: tuple[Path, int]) -> None:
    _, fd = root
    etc = stat_path(fd, "/etc")
    assert etc.name == "etc" and etc.mode & (1 << 31) and etc.link_target == ""
    link = stat_path(fd, "/etc/link")
    assert link.mode & (1 << 27) and link.link_target == "/etc/passwd"
    assert stat_path(fd, "/up/passwd").link_target == ""
    assert stat_path(fd, "/up").link_target == "/etc"
    assert stat_path(fd, "/").name == "/"
    assert stat_path(fd, "/etc/.").name == "."


def test_links_out_of_the_root_are_not_followed_out(root: tuple[Path, int], tmp_path: Path) -> None:
    _, fd = root
    (tmp_path / "host-secret").write_text("s")
    with pytest.raises(PathNotFound):
        stat_path(fd, "/escape/host-secret")
    with pytest.raises(PathNotFound):
        tar_of(fd, "/escape/host-secret")
    assert stat_path(fd, "/escape").link_target == str(tmp_path)


def test_tar_names_follow_the_asked_path(root: tuple[Path, int]) -> None:
    _, fd = root
    assert names_of(tar_of(fd, "/etc")) == ["etc", "etc/link", "etc/passwd"]
    assert names_of(tar_of(fd, "/etc/.")) == [".", "link", "passwd"]
    assert names_of(tar_of(fd, "/etc/passwd")) == ["passwd"]
    # A trailing slash follows the link, but the entries keep the name asked for.
    assert names_of(tar_of(fd, "/up/")) == ["up", "up/link", "up/passwd"]
    with tarfile.open(fileobj=io.BytesIO(tar_of(fd, "/etc/link"))) as tar:
        assert tar.getmember("link").linkname == "/etc/passwd"


def test_export_names_everything_from_the_root(root: tuple[Path, int]) -> None:
    _, fd = root
    out = io.BytesIO()
    write_export(fd, out)
    assert names_of(out.getvalue()) == ["escape", "etc", "etc/link", "etc/passwd", "up"]
