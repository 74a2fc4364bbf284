"""A commit's layer tar from an overlay upper directory: additions and changes as they
are, deletions as `.wh.` files, opaque directories marked, the runtime's placeholders out."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from essaim.engine.layer_tar import write_layer

pytestmark = pytest.mark.unit
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts and trusted xattrs need root")


@pytest.fixture
def layers(tmp_path: Path) -> tuple[Path, Path]:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for directory in ("etc", "bin", "home/user"):
        (lower / directory).mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("root\n")
    (lower / "bin" / "ls").write_text("ls")
    (lower / "home" / "user" / "notes").write_text("n")
    upper.mkdir()
    return lower, upper


def layer(upper: Path, lower: Path) -> tuple[int, dict[str, tarfile.TarInfo], dict[str, bytes]]:
    """(the count write_layer gives, the entries by name, the regular files' bytes)."""
    out = io.BytesIO()
    count = write_layer(upper, [lower], out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        members = {m.name.rstrip("/"): m for m in tar.getmembers()}
        data = {}
        for name, member in members.items():
            extracted = tar.extractfile(member) if member.isreg() else None
            if extracted is not None:
                data[name] = extracted.read()
    return count, members, data


def whiteout(path: Path) -> None:
    os.mknod(path, 0o600 | 0o020000, os.makedev(0, 0))


def test_additions_and_changes_are_in_the_layer(layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    (upper / "etc").mkdir()
    (upper / "etc" / "passwd").write_text("root\nme\n")
    (upper / "new" / "sub").mkdir(parents=True)
    (upper / "new" / "sub" / "f").write_text("x")
    (upper / "new" / "link").symlink_to("/etc/passwd")
    count, members, data = layer(upper, lower)
    assert list(members) == ["etc", "etc/passwd", "new", "new/link", "new/sub", "new/sub/f"]
    assert count == len(members)
    assert members["etc"].isdir() and members["new/link"].issym()
    assert members["new/link"].linkname == "/etc/passwd"
    assert data["etc/passwd"] == b"root\nme\n"


def test_an_untouched_container_makes_an_empty_layer(layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    # What runc leaves for its mounts: empty files and directories, nothing of the
    # container's own.
    (upper / "etc").mkdir()
    for name in ("hostname", "hosts", "resolv.conf"):
        (upper / "etc" / name).write_text("")
    (upper / "proc").mkdir()
    (upper / "dev").mkdir()
    count, members, _ = layer(upper, lower)
    assert (count, members) == (0, {})


def test_a_placeholder_written_to_or_beside_a_change_stays(layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    (upper / "etc").mkdir()
    (upper / "etc" / "hostname").write_text("")
    (upper / "etc" / "motd").write_text("hello\n")
    _, members, _ = layer(upper, lower)
    assert list(members) == ["etc", "etc/motd"]


def test_a_missing_upper_directory_is_an_empty_layer(tmp_path: Path) -> None:
    assert write_layer(tmp_path / "absent", [], io.BytesIO()) == 0


@root_only
def test_deletions_become_whiteout_files(layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    (upper / "bin").mkdir()
    whiteout(upper / "bin" / "ls")
    whiteout(upper / "home")
    _, members, _ = layer(upper, lower)
    assert list(members) == ["bin", "bin/.wh.ls", ".wh.home"]
    marker = members["bin/.wh.ls"]
    assert marker.isreg() and marker.size == 0 and marker.mode == 0o600


@root_only
def test_an_opaque_directory_is_marked_after_its_entry(layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    (upper / "home").mkdir(mode=0o750)
    os.chmod(upper / "home", 0o750)
    os.setxattr(upper / "home", "trusted.overlay.opaque", b"y")
    (upper / "home" / "fresh").write_text("f")
    _, members, _ = layer(upper, lower)
    assert list(members) == ["home", "home/.wh..wh..opq", "home/fresh"]
    marker = members["home/.wh..wh..opq"]
    assert marker.isreg() and marker.size == 0 and marker.mode == 0o750
