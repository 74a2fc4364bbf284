"""COPY and ADD into a root file system: where each source lands, what is replaced,
who owns what, `--chown`/`--chmod`, links and special files, ADD's archive extraction;
and nothing outside the destination root is ever touched.

Copies give entries root's ids unless told otherwise, so most cases need root (the
suite runs as root); the pure parts run anywhere."""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import lzma
import os
import socket
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from essaim.build.chown import parse_chmod, parse_chown
from essaim.build.copy import CopyOptions, normalize_dest, perform_copy
from essaim.build.sources import CopySource, resolve_sources
from essaim.errors import InvalidParameter

pytestmark = pytest.mark.unit
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="copies set owners: needs root")

MTIME_NS = 1_600_000_000_123_456_789  # copies keep whole seconds, as Docker's tar copy


@pytest.mark.parametrize(
    ("workdir", "dest", "expected"),
    [
        ("/app", "x", "/app/x"),
        ("/app", "x/", "/app/x/"),
        ("/app", ".", "/app"),
        ("/app", "./", "/app/"),
        ("/app", "../up", "/up"),
        ("", "x", "/x"),
        ("/app", "/abs/../as/written", "/abs/../as/written"),
        ("/app/", "a//b/", "/app/a/b/"),
    ],
)
def test_normalize_dest_is_mobys(workdir: str, dest: str, expected: str) -> None:
    assert normalize_dest(workdir, dest) == expected


@pytest.mark.parametrize(("spec", "mode"), [("755", 0o755), ("0644", 0o644), ("4755", 0o4755)])
def test_chmod_takes_octal_modes(spec: str, mode: int) -> None:
    assert parse_chmod(spec) == mode


@pytest.mark.parametrize("spec", ["64a", "10000", "", "+755", "0o755", "u+x", "7_55"])
def test_chmod_refuses_anything_else_in_buildkits_words(spec: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_chmod(spec)
    assert caught.value.message == (
        f"invalid chmod parameter: '{spec}'. it should be octal string and between 0 and 07777"
    )


class Tree:
    """A build context and a destination root side by side, next to a host directory
    that must stay untouched."""

    def __init__(self, base: Path) -> None:
        self.context = base / "context"
        self.root = base / "root"
        self.outside = base / "outside"
        for path in (self.context, self.root, self.outside):
            path.mkdir()
        (self.outside / "keep").write_text("precious")

    def write(self, rel: str, data: str = "data", mode: int = 0o644) -> Path:
        path = self.context / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data)
        path.chmod(mode)
        os.utime(path, ns=(MTIME_NS, MTIME_NS))
        return path

    def copy(self, patterns: list[str], dest: str, options: CopyOptions | None = None) -> None:
        sources = resolve_sources(self.context, patterns, instruction="COPY")
        perform_copy(self.root, sources, dest, options or CopyOptions())

    def outside_untouched(self) -> bool:
        return [p.name for p in self.outside.iterdir()] == ["keep"]


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    t = Tree(tmp_path)
    yield t
    assert t.outside_untouched()


def ids(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@needs_root
def test_a_file_into_a_directory_keeps_its_name_mode_and_mtime(tree: Tree) -> None:
    tree.write("a.txt", "hello", 0o640)
    os.chown(tree.context / "a.txt", 1234, 1234)
    tree.copy(["a.txt"], "/app/sub/")
    copied = tree.root / "app" / "sub" / "a.txt"
    assert copied.read_text() == "hello"
    assert mode(copied) == 0o640
    assert ids(copied) == (0, 0)  # a context file is root's
    assert copied.stat().st_mtime_ns == MTIME_NS - MTIME_NS % 10**9
    for made in (tree.root / "app", tree.root / "app" / "sub"):
        assert (mode(made), ids(made)) == (0o755, (0, 0))


@needs_root
def test_a_file_goes_inside_an_existing_directory_else_becomes_the_destination(
    tree: Tree,
) -> None:
    tree.write("a.txt", "A")
    (tree.root / "dir").mkdir()
    tree.copy(["a.txt"], "/dir")
    tree.copy(["a.txt"], "/renamed")
    assert (tree.root / "dir" / "a.txt").read_text() == "A"
    assert (tree.root / "renamed").read_text() == "A"


@needs_root
def test_a_directory_copies_its_contents(tree: Tree) -> None:
    tree.write("src/one", "1")
    tree.write("src/deep/two", "2", 0o600)
    (tree.context / "src" / "deep").chmod(0o700)
    os.utime(tree.context / "src" / "deep", ns=(MTIME_NS, MTIME_NS))
    tree.copy(["src"], "/dst")
    assert sorted(p.relative_to(tree.root).as_posix() for p in tree.root.rglob("*")) == [
        "dst",
        "dst/deep",
        "dst/deep/two",
        "dst/one",
    ]
    deep = tree.root / "dst" / "deep"
    assert (mode(deep), mode(deep / "two")) == (0o700, 0o600)
    assert deep.stat().st_mtime_ns == MTIME_NS - MTIME_NS % 10**9
    assert (mode(tree.root / "dst"), ids(tree.root / "dst")) == (0o755, (0, 0))


@needs_root
def test_a_directory_merges_into_an_existing_one_which_keeps_its_own_metadata(
    tree: Tree,
) -> None:
    tree.write("src/new", "n")
    tree.write("src/sub/also-new", "a", 0o600)
    (tree.context / "src" / "sub").chmod(0o750)
    existing = tree.root / "dst"
    (existing / "sub").mkdir(parents=True)
    existing.chmod(0o700)
    os.chown(existing, 500, 600)
    (existing / "old").write_text("o")
    (existing / "sub" / "kept").write_text("k")
    tree.copy(["src"], "/dst", CopyOptions(chown=(7, 8)))
    assert (existing / "old").read_text() == "o"
    # A directory of the source merges with one in the way, and gives it its metadata.
    assert (existing / "sub" / "kept").read_text() == "k"
    assert (existing / "sub" / "also-new").read_text() == "a"
    assert (mode(existing / "sub"), ids(existing / "sub")) == (0o750, (7, 8))
    assert ids(existing / "old") == (0, 0)  # not copied: left alone
    assert (mode(existing), ids(existing)) == (0o700, (500, 600))
    assert ids(existing / "new") == (7, 8)


@needs_root
def test_destination_symlinks_resolve_inside_the_root(tree: Tree) -> None:
    tree.write("a.txt", "A")
    (tree.root / "abs").symlink_to("/etc")
    (tree.root / "rel").symlink_to("../../../../../../" + str(tree.outside).lstrip("/"))
    (tree.root / "etc").mkdir()
    tree.copy(["a.txt"], "/abs/")
    tree.copy(["a.txt"], "/rel/")
    assert (tree.root / "etc" / "a.txt").read_text() == "A"
    # The climbing link stops at the root: its target is the root's own path.
    landed = tree.root / str(tree.outside).lstrip("/") / "a.txt"
    assert landed.read_text() == "A"


@needs_root
def test_the_last_symlink_of_the_destination_is_followed_too(tree: Tree) -> None:
    tree.write("a.txt", "new")
    (tree.root / "real").write_text("old")
    (tree.root / "alias").symlink_to("real")
    tree.copy(["a.txt"], "/alias")
    assert (tree.root / "alias").is_symlink()
    assert (tree.root / "real").read_text() == "new"


@needs_root
def test_symlinks_in_the_way_inside_a_copied_tree_are_replaced_never_followed(
    tree: Tree,
) -> None:
    tree.write("src/sub/x", "x")
    tree.write("src/file", "f")
    (tree.root / "dst").mkdir()
    (tree.root / "dst" / "sub").symlink_to(tree.outside)
    (tree.root / "dst" / "file").symlink_to(tree.outside / "keep")
    tree.copy(["src"], "/dst")
    assert (tree.root / "dst" / "sub").is_dir() and not (tree.root / "dst" / "sub").is_symlink()
    assert (tree.root / "dst" / "sub" / "x").read_text() == "x"
    assert (tree.root / "dst" / "file").read_text() == "f"
    assert (tree.outside / "keep").read_text() == "precious"


@needs_root
def test_what_is_in_the_way_is_replaced(tree: Tree) -> None:
    tree.write("src/was-dir", "now a file")
    tree.write("src/was-file/inner", "now a dir")
    tree.write("src/same", "new")
    dst = tree.root / "dst"
    (dst / "was-dir" / "deep").mkdir(parents=True)
    (dst / "was-file").write_text("old")
    (dst / "same").write_text("old content, longer than the new one")
    tree.copy(["src"], "/dst")
    assert (dst / "was-dir").read_text() == "now a file"
    assert (dst / "was-file" / "inner").read_text() == "now a dir"
    assert (dst / "same").read_text() == "new"


@needs_root
def test_symlinks_hard_links_and_fifos_are_copied_as_such(tree: Tree) -> None:
    tree.write("src/file", "f")
    (tree.context / "src" / "link").symlink_to("/file")
    os.link(tree.context / "src" / "file", tree.context / "src" / "hard")
    os.mkfifo(tree.context / "src" / "pipe", 0o640)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tree.context / "src" / "sock"))
    listener.close()
    tree.copy(["src"], "/dst/")
    dst = tree.root / "dst"
    assert os.readlink(dst / "link") == "/file"
    assert (dst / "hard").stat().st_ino == (dst / "file").stat().st_ino
    assert stat.S_ISFIFO((dst / "pipe").lstat().st_mode) and mode(dst / "pipe") == 0o640
    assert not (dst / "sock").exists()  # Docker's tar writer skips sockets


@needs_root
def test_chown_applies_to_every_entry_and_the_directories_made_for_a_file(tree: Tree) -> None:
    tree.write("src/f", "f")
    (tree.context / "src" / "l").symlink_to("f")
    tree.write("a.txt")
    options = CopyOptions(chown=(1000, 1001))
    tree.copy(["src"], "/d/")
    tree.copy(["src"], "/c/", options)
    tree.copy(["a.txt"], "/x/y/", options)
    assert {ids(tree.root / "c" / n) for n in ("f", "l")} == {(1000, 1001)}
    assert ids(tree.root / "c") == (1000, 1001)  # made for the copy
    assert ids(tree.root / "d" / "f") == (0, 0)
    for path in (tree.root / "x", tree.root / "x" / "y", tree.root / "x" / "y" / "a.txt"):
        assert ids(path) == (1000, 1001)


@needs_root
def test_copy_from_a_stage_keeps_the_sources_owners(tree: Tree) -> None:
    tree.write("stage/dir/sub/nested", "n")
    tree.write("stage/file", "f")
    os.chown(tree.context / "stage" / "file", 100, 200)
    os.chown(tree.context / "stage" / "dir" / "sub", 101, 201)
    os.chown(tree.context / "stage" / "dir" / "sub" / "nested", 102, 202)
    sources = resolve_sources(
        tree.context / "stage", ["/file", "/dir"], instruction="COPY", from_image=True
    )
    perform_copy(tree.root, sources[:1], "/", CopyOptions(preserve_ownership=True))
    perform_copy(tree.root, sources[1:], "/dir", CopyOptions(preserve_ownership=True))
    assert ids(tree.root / "file") == (100, 200)
    assert ids(tree.root / "dir") == (0, 0)  # made by the copy, as root
    assert ids(tree.root / "dir" / "sub") == (101, 201)
    assert ids(tree.root / "dir" / "sub" / "nested") == (102, 202)


@needs_root
def test_chmod_sets_files_and_directories_but_not_symlinks(tree: Tree) -> None:
    tree.write("src/sub/f", "f", 0o600)
    (tree.context / "src" / "l").symlink_to("sub")
    (tree.root / "existing").mkdir(mode=0o711)
    tree.copy(["src"], "/new", CopyOptions(chmod=0o750))
    tree.copy(["src"], "/existing", CopyOptions(chmod=0o750))
    new = tree.root / "new"
    assert {mode(p) for p in (new, new / "sub", new / "sub" / "f")} == {0o750}
    assert mode(new / "l") == 0o777
    assert mode(tree.root / "existing") == 0o711  # not made by the copy


@needs_root
def test_special_mode_bits_and_capabilities_survive_the_copy(tree: Tree) -> None:
    tool = tree.write("tool", "#!/bin/sh\n", 0o755)
    tool.chmod(0o4755)
    # struct vfs_cap_data, revision 2, effective: cap_net_bind_service.
    caps = bytes.fromhex("01000002") + (1 << 10).to_bytes(4, "little") + bytes(12)
    try:
        os.setxattr(tool, "security.capability", caps)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            pytest.skip("no security xattrs here")
        raise
    tree.copy(["tool"], "/bin/", CopyOptions(chown=(5, 5)))
    copied = tree.root / "bin" / "tool"
    assert mode(copied) == 0o4755
    assert os.getxattr(copied, "security.capability") == caps


def tar_bytes(entries: dict[str, str], owner: int = 321) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.uid, info.gid, info.mtime = len(data), owner, owner, 1_500_000_000
            tar.addfile(info, io.BytesIO(data.encode()))
    return buf.getvalue()


COMPRESSORS = {
    "tar": lambda b: b,
    "tar.gz": gzip.compress,
    "tar.bz2": bz2.compress,
    "tar.xz": lzma.compress,
    "tar.zst": lambda b: zstandard.ZstdCompressor().compress(b),
}


@needs_root
@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_add_extracts_a_local_archive_with_its_own_owners(tree: Tree, kind: str) -> None:
    archive = tree.context / f"files.{kind}"
    archive.write_bytes(COMPRESSORS[kind](tar_bytes({"a": "1", "d/b": "2"})))
    sources = resolve_sources(tree.context, [archive.name], instruction="ADD")
    perform_copy(tree.root, sources, "/opt", CopyOptions(chown=(9, 9), decompress=True))
    assert (tree.root / "opt" / "a").read_text() == "1"
    assert (tree.root / "opt" / "d" / "b").read_text() == "2"
    assert ids(tree.root / "opt" / "a") == (321, 321)  # --chown stops at the archive
    assert ids(tree.root / "opt") == (0, 0)


@needs_root
def test_add_copies_what_is_not_an_archive_and_copy_never_extracts(tree: Tree) -> None:
    tree.context.joinpath("fake.tar.gz").write_bytes(gzip.compress(b"not a tar at all"))
    tree.context.joinpath("real.tar").write_bytes(tar_bytes({"a": "1"}))
    tree.context.joinpath("empty.tar").write_bytes(bytes(1024))
    add = CopyOptions(decompress=True)
    for name in ("fake.tar.gz", "empty.tar"):
        sources = resolve_sources(tree.context, [name], instruction="ADD")
        perform_copy(tree.root, sources, "/add/", add)
        assert (tree.root / "add" / name).read_bytes() == (tree.context / name).read_bytes()
    tree.copy(["real.tar"], "/copy/")
    assert (tree.root / "copy" / "real.tar").read_bytes() == (
        tree.context / "real.tar"
    ).read_bytes()
    downloaded = CopySource(
        tree.context / "real.tar", "real.tar", False, url="http://127.0.0.1/real.tar"
    )
    perform_copy(tree.root, [downloaded], "/url/", add)
    assert (tree.root / "url" / "real.tar").is_file()


@needs_root
def test_an_archive_cannot_write_outside_its_root(tree: Tree) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, str(tree.outside)
        tar.addfile(link)
        info = tarfile.TarInfo("escape/planted")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    tree.context.joinpath("evil.tar").write_bytes(buf.getvalue())
    sources = resolve_sources(tree.context, ["evil.tar"], instruction="ADD")
    # The link's absolute target is read in the root, where it does not exist.
    with pytest.raises(InvalidParameter, match="invalid tar entry 'escape/planted'"):
        perform_copy(tree.root, sources, "/", CopyOptions(decompress=True))
    inside = tree.root / str(tree.outside).lstrip("/")
    inside.mkdir(parents=True)
    perform_copy(tree.root, sources, "/", CopyOptions(decompress=True))
    assert (inside / "planted").read_text() == "x"


@needs_root
def test_a_file_cannot_go_under_a_file(tree: Tree) -> None:
    tree.write("a.txt")
    (tree.root / "file").write_text("f")
    with pytest.raises(InvalidParameter, match=r"mkdir /file: not a directory"):
        tree.copy(["a.txt"], "/file/")


def write_user_files(root: Path) -> None:
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n\n  app:x:1000:1001::/home/app:/bin/sh  \nodd:x:zz:1\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nstaff:x:50:app\napp:x:1001:\n")


def test_chown_reads_names_from_the_destination_root(tmp_path: Path) -> None:
    write_user_files(tmp_path)
    assert parse_chown("app", tmp_path) == (1000, 1001)
    assert parse_chown("app:staff", tmp_path) == (1000, 50)
    assert parse_chown("12:34", tmp_path) == (12, 34)
    assert parse_chown("root:34", tmp_path) == (0, 34)
    assert parse_chown("odd:0", tmp_path) == (0, 0)  # an unreadable id reads as 0


def test_chown_follows_the_roots_own_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    write_user_files(root / "real")
    (root / "etc").symlink_to("/real/etc")  # absolute: read in the root, not the host
    assert parse_chown("app", root) == (1000, 1001)


def test_chown_failures_in_dockers_words(tmp_path: Path) -> None:
    write_user_files(tmp_path)
    cases = {
        "nobody": "can't find uid for user nobody: no such user: nobody",
        "app:nogroup": "can't find gid for group nogroup: no such group: nogroup",
        "12:nogroup": "can't find gid for group nogroup: no such group: nogroup",
        "a:b:c": "invalid chown string format: a:b:c",
        ":": "can't find uid for user : no such user: ",
    }
    for spec, reason in cases.items():
        with pytest.raises(InvalidParameter) as caught:
            parse_chown(spec, tmp_path)
        assert caught.value.message == (
            f"unable to convert uid/gid chown string to host mapping: {reason}"
        )
    with pytest.raises(InvalidParameter) as caught:
        parse_chown("app", tmp_path / "etc")  # a root with no /etc/passwd
    assert caught.value.message.endswith(
        "can't find uid for user app: open /etc/passwd: no such file or directory"
    )
