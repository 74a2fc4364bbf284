"""`docker diff` from an overlay upper directory: additions, modifications, whiteouts and
opaque directories as Docker's overlay driver reports them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from essaim.engine.filesystem_changes import ADDED, DELETED, MODIFIED, Change, overlay_changes

pytestmark = pytest.mark.unit
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts and trusted xattrs need root")


@pytest.fixture
def layers(tmp_path: Path) -> tuple[Path, Path]:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("root\n")
    (lower / "bin").mkdir()
    (lower / "bin" / "ls").write_text("ls")
    upper.mkdir()
    return lower, upper


def test_additions_and_modifications(layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    (upper / "etc").mkdir()
    (upper / "etc" / "passwd").write_text("changed\n")
    (upper / "new").mkdir()
    (upper / "new" / "f").write_text("x")
    changes = overlay_changes(upper, [lower])
    assert Change("/etc/passwd", MODIFIED) in changes
    assert changes[-2:] == [Change("/new", ADDED), Change("/new/f", ADDED)]


def test_an_unchanged_copied_up_directory_is_left_out(layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    (upper / "etc").mkdir()
    (upper / "etc" / "added").write_text("x")
    st = os.stat(lower / "etc")
    os.chmod(upper / "etc", stat.S_IMODE(st.st_mode))
    os.utime(upper / "etc", ns=(st.st_atime_ns, st.st_mtime_ns))
    # Same size, mode and time: only its child counts, and its parent rule adds it.
    assert overlay_changes(upper, [lower]) == [
        Change("/etc", MODIFIED),
        Change("/etc/added", ADDED),
    ]


def test_runtime_placeholders_are_not_changes(layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    (upper / "etc").mkdir()
    (upper / "etc" / "hostname").write_text("")
    (upper / "proc").mkdir()
    assert overlay_changes(upper, [lower]) == []
    (upper / "etc" / "hostname").write_text("written by hand\n")
    assert Change("/etc/hostname", ADDED) in overlay_changes(upper, [lower])


@root_only
def test_whiteouts_and_opaque_directories_are_deletions(layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    (upper / "bin").mkdir()
    os.mknod(upper / "bin" / "ls", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "etc").mkdir()
    os.setxattr(upper / "etc", "trusted.overlay.opaque", b"y")
    (upper / "etc" / "new").write_text("n")
    changes = overlay_changes(upper, [lower])
    assert Change("/bin/ls", DELETED) in changes
    assert Change("/etc", DELETED) in changes
    assert Change("/etc/new", ADDED) in changes


def test_no_upper_directory_means_no_change(tmp_path: Path) -> None:
    assert overlay_changes(tmp_path / "missing", []) == []
