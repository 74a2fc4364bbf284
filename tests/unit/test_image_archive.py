"""The layer unpacker: whatever an archive's names, links and earlier entries say, nothing
is written outside the target, and a refused archive is an InvalidParameter."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from essaim.errors import InvalidParameter
from essaim.image import archive
from essaim.image.archive import UnsafeArchive

MTIME = 1_600_000_000


@dataclass(frozen=True)
class Entry:
    name: str
    kind: bytes = tarfile.REGTYPE
    data: bytes = b""
    link: str = ""
    mode: int = 0o644
    mtime: int = MTIME
    pax: tuple[tuple[str, str], ...] = ()


def File(name: str, data: bytes = b"", mode: int = 0o644, mtime: int = MTIME) -> Entry:
    return Entry(name, tarfile.REGTYPE, data, mode=mode, mtime=mtime)


def Dir(name: str, mode: int = 0o755, mtime: int = MTIME) -> Entry:
    return Entry(name, tarfile.DIRTYPE, mode=mode, mtime=mtime)


def Symlink(name: str, target: str, mtime: int = MTIME) -> Entry:
    return Entry(name, tarfile.SYMTYPE, link=target, mode=0o777, mtime=mtime)


def Hardlink(name: str, target: str) -> Entry:
    return Entry(name, tarfile.LNKTYPE, link=target)


def tar_bytes(*entries: Entry) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = e.kind
            info.mode = e.mode
            info.mtime = e.mtime
            info.linkname = e.link
            info.size = len(e.data) if e.kind == tarfile.REGTYPE else 0
            info.pax_headers = dict(e.pax)
            tar.addfile(info, io.BytesIO(e.data) if e.kind == tarfile.REGTYPE else None)
    return buf.getvalue()


def unpack(target: Path, *entries: Entry, whiteouts: bool = False) -> int:
    return archive.unpack(
        io.BytesIO(tar_bytes(*entries)), target, whiteouts=whiteouts, same_owner=False
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The target, with a sibling `outside` holding a file nothing may touch."""
    target = tmp_path / "root"
    target.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    return target


def tree(path: Path) -> dict[str, tuple[str, ...]]:
    """Everything under `path` that a write could change, without following links."""
    out: dict[str, tuple[str, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            kind = stat.S_IFMT(st.st_mode)
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(Path(full).read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(full)
            out[os.path.relpath(full, path)] = (
                str(kind),
                oct(st.st_mode),
                str(st.st_nlink),
                str(st.st_mtime_ns),
                digest,
            )
    return out


def outside_untouched(root: Path) -> None:
    outside = root.parent / "outside"
    assert sorted(os.listdir(root.parent)) == ["outside", "root"]
    assert os.listdir(outside) == ["secret"]
    assert (outside / "secret").read_bytes() == b"secret"
    assert os.lstat(outside / "secret").st_nlink == 1


# -- compression


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (gzip.compress(b"x")[:8], "gzip"),
        (bz2.compress(b"x")[:8], "bzip2"),
        (lzma.compress(b"x")[:8], "xz"),
        (b"\x28\xb5\x2f\xfd\x00", "zstd"),
        (b"ustar\x00\x00\x00", "none"),
        (b"", "none"),
    ],
)
def test_sniff_compression_from_magic(head: bytes, kind: str) -> None:
    assert archive.sniff_compression(head) == kind


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress, bytes])
def test_open_decompressed_unpacks_every_supported_compression(compress, root: Path) -> None:  # type: ignore[no-untyped-def]
    raw = compress(tar_bytes(File("etc/hostname", b"box\n")))
    with archive.open_decompressed(io.BytesIO(raw)) as stream:
        assert archive.unpack(stream, root, same_owner=False) == 4
    assert (root / "etc" / "hostname").read_bytes() == b"box\n"


def test_zstd_of_several_frames_is_read_whole(root: Path) -> None:
    raw = tar_bytes(File("f", b"x" * 5000), File("g", b"y" * 300))
    compressor = zstandard.ZstdCompressor()
    framed = compressor.compress(raw[:4096]) + compressor.compress(raw[4096:])
    with archive.open_decompressed(io.BytesIO(framed)) as stream:
        archive.unpack(stream, root, same_owner=False)
    assert (root / "f").read_bytes() == b"x" * 5000
    assert (root / "g").read_bytes() == b"y" * 300


@pytest.mark.parametrize(
    "raw",
    [
        b"\x1f\x8b" + b"\xff" * 64,  # gzip magic, garbage header
        gzip.compress(tar_bytes(File("f", b"x" * 5000)))[:-40],  # truncated
        bz2.compress(tar_bytes(File("f", b"x" * 5000)))[:-40],
        lzma.compress(tar_bytes(File("f", b"x" * 5000)))[:-40],
        b"BZh9" + b"\x00" * 64,
        zstandard.ZstdCompressor().compress(tar_bytes(File("f", b"x" * 5000)))[:-10],
        b"\x28\xb5\x2f\xfd" + b"\xff" * 64,
    ],
    ids=[
        "gzip-garbage",
        "gzip-truncated",
        "bzip2-truncated",
        "xz-truncated",
        "bzip2-garbage",
        "zstd-truncated",
        "zstd-garbage",
    ],
)
def test_corrupt_compressed_data_is_an_invalid_parameter(raw: bytes, root: Path) -> None:
    with (
        pytest.raises(InvalidParameter, match=r"invalid (gzip|bzip2|xz|zstd) data"),
        archive.open_decompressed(io.BytesIO(raw)) as stream,
    ):
        archive.unpack(stream, root, same_owner=False)


def test_corrupt_compressed_data_fails_plain_reads_too() -> None:
    # The image service hashes layers with read(): the same error, not an EOFError.
    raw = gzip.compress(b"y" * 10_000)[:-20]
    with archive.open_decompressed(io.BytesIO(raw)) as stream, pytest.raises(InvalidParameter):
        while stream.read(4096):
            pass


# -- not a tar


def test_garbage_is_an_invalid_tar_header(root: Path) -> None:
    with pytest.raises(InvalidParameter, match="archive/tar: invalid tar header"):
        archive.unpack(io.BytesIO(b"hello, not a tar" * 64), root, same_owner=False)


def test_empty_input_is_an_empty_layer(root: Path) -> None:
    assert archive.unpack(io.BytesIO(b""), root, same_owner=False) == 0
    assert list(root.iterdir()) == []


def test_truncated_tar_is_refused(root: Path) -> None:
    raw = tar_bytes(File("big", b"z" * 20_000))[:5000]
    with pytest.raises(InvalidParameter):
        archive.unpack(io.BytesIO(raw), root, same_owner=False)


# -- ordinary content and metadata


def test_files_dirs_links_and_their_metadata(root: Path) -> None:
    size = unpack(
        root,
        Dir("usr/", mode=0o750, mtime=1000),
        Dir("usr/bin/", mode=0o755, mtime=2000),
        File("usr/bin/tool", b"#!/bin/sh\n", mode=0o4755, mtime=3000),
        Symlink("usr/bin/alias", "tool", mtime=4000),
        Entry("run/fifo", tarfile.FIFOTYPE, mode=0o620, mtime=5000),
    )
    assert size == len(b"#!/bin/sh\n") + len("tool")
    tool = root / "usr/bin/tool"
    assert tool.read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE(tool.stat().st_mode) == 0o4755
    assert tool.stat().st_mtime == 3000
    assert stat.S_IMODE((root / "usr").stat().st_mode) == 0o750
    # Directory times survive the children written into them afterwards.
    assert (root / "usr").stat().st_mtime == 1000
    assert (root / "usr/bin").stat().st_mtime == 2000
    assert os.readlink(root / "usr/bin/alias") == "tool"
    assert os.lstat(root / "usr/bin/alias").st_mtime == 4000
    fifo = os.lstat(root / "run/fifo")
    assert stat.S_ISFIFO(fifo.st_mode)
    assert stat.S_IMODE(fifo.st_mode) == 0o620


def test_missing_parent_directories_are_made(root: Path) -> None:
    unpack(root, File("a/b/c/file", b"x"))
    assert (root / "a/b/c/file").read_bytes() == b"x"
    assert stat.S_IMODE((root / "a/b").stat().st_mode) == 0o755


def test_the_archive_root_entry_sets_the_target_metadata(root: Path) -> None:
    unpack(root, Dir("./", mode=0o711, mtime=777), File("f"))
    assert stat.S_IMODE(root.stat().st_mode) == 0o711
    assert root.stat().st_mtime == 777


def test_hardlinks_share_the_inode(root: Path) -> None:
    unpack(root, File("bin/a", b"data"), Hardlink("bin/b", "bin/a"), Hardlink("c", "/bin/a"))
    assert os.stat(root / "bin/a").st_ino == os.stat(root / "bin/b").st_ino
    assert os.stat(root / "c").st_nlink == 3


def test_repeated_directory_entry_takes_the_last_metadata(root: Path) -> None:
    unpack(root, Dir("d/", mode=0o700, mtime=100), File("d/f"), Dir("d/", mode=0o755, mtime=200))
    assert (root / "d").stat().st_mtime == 200
    assert stat.S_IMODE((root / "d").stat().st_mode) == 0o755


def test_directory_replaced_by_a_file_keeps_the_file_time(root: Path) -> None:
    unpack(root, Dir("x/", mtime=100), File("x/child"), File("x", b"now a file", mtime=900))
    assert (root / "x").read_bytes() == b"now a file"
    assert (root / "x").stat().st_mtime == 900


def test_file_replaced_by_a_directory(root: Path) -> None:
    unpack(root, File("x", b"file"), Dir("x/"), File("x/inner", b"in"))
    assert (root / "x/inner").read_bytes() == b"in"


def test_existing_directory_keeps_its_content_when_listed_again(root: Path) -> None:
    unpack(root, File("d/keep", b"k"))
    unpack(root, Dir("d/", mode=0o711))
    assert (root / "d/keep").read_bytes() == b"k"


def test_symlink_replaced_by_a_directory_does_not_follow_it(root: Path) -> None:
    outside = root.parent / "outside"
    unpack(root, Symlink("d", str(outside)), Dir("d/", mode=0o700), File("d/f", b"in"))
    assert stat.S_ISDIR(os.lstat(root / "d").st_mode)
    assert (root / "d/f").read_bytes() == b"in"
    outside_untouched(root)


def test_file_replacing_a_symlink_never_writes_through_it(root: Path) -> None:
    secret = root.parent / "outside" / "secret"
    unpack(root, Symlink("f", str(secret)), File("f", b"overwritten?", mode=0o666))
    assert stat.S_ISREG(os.lstat(root / "f").st_mode)
    assert (root / "f").read_bytes() == b"overwritten?"
    outside_untouched(root)


def test_file_replacing_a_hardlink_does_not_change_the_other_name(root: Path) -> None:
    unpack(root, File("a", b"original"), Hardlink("b", "a"), File("b", b"new"))
    assert (root / "a").read_bytes() == b"original"
    assert (root / "b").read_bytes() == b"new"


def test_whiteout_names_are_plain_files_without_whiteout_handling(root: Path) -> None:
    unpack(root, File("d/.wh.gone", b""), File("d/.wh..wh..opq", b""))
    assert sorted(os.listdir(root / "d")) == [".wh..wh..opq", ".wh.gone"]


def test_aufs_metadata_whiteouts_are_ignored(root: Path) -> None:
    unpack(root, File(".wh..wh.plnk/123.456", b"x"), File("d/.wh..wh.aufs"), whiteouts=True)
    assert os.listdir(root / "d") == []


@pytest.mark.parametrize("name", [".wh.", "d/.wh.."])
def test_whiteouts_of_nothing_are_refused(name: str, root: Path) -> None:
    with pytest.raises(UnsafeArchive, match="bad whiteout"):
        unpack(root, File(name), whiteouts=True)


def test_device_nodes_are_skipped_without_ownership(root: Path) -> None:
    dev = Entry("dev/null", tarfile.CHRTYPE, mode=0o666)
    unpack(root, dev, File("dev/after", b"x"))
    assert not os.path.lexists(root / "dev/null")
    assert (root / "dev/after").exists()


def test_user_xattrs_are_applied(root: Path) -> None:
    probe = root / "probe"
    probe.touch()
    try:
        os.setxattr(probe, "user.probe", b"1")
    except OSError:
        pytest.skip("no user xattrs on this filesystem")
    unpack(root, Entry("f", pax=(("SCHILY.xattr.user.origin", "layer"),)))
    assert os.getxattr(root / "f", "user.origin") == b"layer"


def test_unrepresentable_mtime_is_ignored(root: Path) -> None:
    unpack(root, Entry("f", pax=(("mtime", "1e30"),)), Entry("d", tarfile.DIRTYPE, mtime=10**20))
    assert (root / "f").exists()


# -- escapes: nothing outside the target, ever


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "./../escape", "..", "a/../.."])
def test_relative_names_above_the_target_are_refused(name: str, root: Path) -> None:
    with pytest.raises(UnsafeArchive) as info:
        unpack(root, File(name, b"x"))
    assert "outside of the target" in str(info.value)
    assert repr(name) in str(info.value)
    outside_untouched(root)


@pytest.mark.parametrize("name", ["/abs/file", "//abs/file", "/../abs/file", "/abs/./x/../file"])
def test_absolute_names_land_inside_the_target(name: str, root: Path) -> None:
    unpack(root, File(name, b"x"))
    assert (root / "abs/file").read_bytes() == b"x"
    outside_untouched(root)


def test_symlink_to_absolute_path_resolves_inside_the_target(root: Path) -> None:
    marker = f"essaim-test-{os.getpid()}-{id(root)}"
    try:
        unpack(root, Symlink("a", "/etc"), File(f"a/{marker}", b"x"))
        assert not os.path.lexists(f"/etc/{marker}")
        assert (root / "etc" / marker).read_bytes() == b"x"
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"/etc/{marker}")


def test_symlink_to_the_outside_directory_resolves_inside(root: Path) -> None:
    outside = root.parent / "outside"
    unpack(root, Symlink("a", str(outside)), File("a/secret", b"pwned"))
    assert (root / str(outside).lstrip("/") / "secret").read_bytes() == b"pwned"
    outside_untouched(root)


@pytest.mark.parametrize("target", ["../outside", "../../outside", "../../../../outside", ".."])
def test_relative_symlink_climbing_out_stops_at_the_target_root(target: str, root: Path) -> None:
    unpack(root, Symlink("d/link", target), File("d/link/secret", b"pwned"))
    outside_untouched(root)
    written = [p for p in root.rglob("secret") if p.is_file()]
    assert [p.read_bytes() for p in written] == [b"pwned"]


def test_symlink_chains_resolve_inside(root: Path) -> None:
    unpack(
        root,
        Symlink("one", "two/.."),
        Symlink("two", "/three"),
        Dir("three/"),
        Symlink("four", "one/../../.."),
        File("four/secret", b"pwned"),
    )
    outside_untouched(root)
    assert (root / "secret").read_bytes() == b"pwned"


def test_symlink_loops_are_refused(root: Path) -> None:
    with pytest.raises(UnsafeArchive, match="too many symbolic links"):
        unpack(root, Symlink("a", "b"), Symlink("b", "a"), File("a/x"))


def test_path_through_a_file_is_refused(root: Path) -> None:
    with pytest.raises(UnsafeArchive, match="not a directory"):
        unpack(root, File("f"), File("f/x"))


@pytest.mark.parametrize(
    "link",
    ["../outside/secret", "../../etc/passwd", "/etc/passwd", "missing", ".", "/"],
)
def test_hardlinks_to_outside_or_nothing_are_refused(link: str, root: Path) -> None:
    with pytest.raises(UnsafeArchive):
        unpack(root, Hardlink("x", link))
    outside_untouched(root)


def test_hardlink_through_a_symlinked_directory_stays_inside(root: Path) -> None:
    outside = root.parent / "outside"
    with pytest.raises(UnsafeArchive, match=r"invalid hardlink|does not exist"):
        unpack(root, Symlink("l", str(outside)), Hardlink("x", "l/secret"))
    outside_untouched(root)


def test_hardlink_to_a_symlink_links_the_symlink_itself(root: Path) -> None:
    secret = root.parent / "outside" / "secret"
    unpack(root, Symlink("s", str(secret)), Hardlink("h", "s"), File("h", b"replaced"))
    assert os.readlink(root / "s") == str(secret)
    assert (root / "h").read_bytes() == b"replaced"
    outside_untouched(root)


def test_hardlink_to_a_directory_is_refused(root: Path) -> None:
    with pytest.raises(UnsafeArchive, match="invalid hardlink"):
        unpack(root, Dir("d/"), Hardlink("x", "d"))


def test_directory_time_is_not_set_through_a_later_symlink(root: Path) -> None:
    # `a/b/` is recorded for its mtime; `a` then becomes a symlink to the outside,
    # which holds a `b`: restoring the times must not touch the outside one.
    outside = root.parent / "outside"
    (outside / "b").mkdir()
    os.utime(outside / "b", (5, 5))
    os.utime(outside, (5, 5))
    unpack(root, Dir("a/"), Dir("a/b/", mtime=12345), Symlink("a", str(outside)))
    assert (outside / "b").stat().st_mtime == 5
    assert outside.stat().st_mtime == 5


# -- malformed entries


@pytest.mark.parametrize(
    "entry",
    [
        Symlink("s", ""),  # a symlink to nothing
        Entry("x", pax=(("path", "a\x00b"),)),  # NUL inside a PAX name
        Entry("s", tarfile.SYMTYPE, link="x", pax=(("linkpath", "a\x00b"),)),
        File("n" * 300),  # a component longer than NAME_MAX
        Entry("big", pax=(("uid", str(2**70)),)),
    ],
    ids=["empty-symlink", "nul-name", "nul-target", "long-name", "huge-uid"],
)
def test_malformed_entries_are_invalid_parameters(entry: Entry, root: Path) -> None:
    with pytest.raises(UnsafeArchive, match="invalid tar entry"):
        archive.unpack(io.BytesIO(tar_bytes(entry)), root, same_owner=True)
    outside_untouched(root)


# -- property: random archives never write outside


# `outside` and `secret` are also the names of what lies outside the target, so that a
# write that escaped would hit something the test watches.
SEGMENTS = st.sampled_from(["a", "b", "outside", "secret", ".", "..", ""])
TARGETS = st.sampled_from(
    ["a", "b", "a/b", ".", "..", "../..", "../../..", "/", "/a", "{out}", "{out}/x", "{base}"]
)


@st.composite
def member_names(draw: st.DrawFn) -> str:
    parts = draw(st.lists(SEGMENTS, min_size=1, max_size=4))
    return ("/" if draw(st.booleans()) else "") + "/".join(parts)


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    kind = draw(st.sampled_from(["file", "dir", "symlink", "hardlink"]))
    name = draw(member_names())
    if kind == "file":
        return File(name, draw(st.binary(max_size=8)))
    if kind == "dir":
        return Dir(name, mtime=draw(st.integers(0, 2**31)))
    if kind == "symlink":
        return Symlink(name, draw(TARGETS))
    return Hardlink(name, draw(st.one_of(member_names(), TARGETS)))


@contextlib.contextmanager
def nested_target() -> Iterator[tuple[Path, Path]]:
    """base/l1/l2/root: three levels above the target are watched, as far as the
    relative targets can climb."""
    with tempfile.TemporaryDirectory() as base_dir:
        base = Path(base_dir)
        target = base / "l1" / "l2" / "root"
        target.mkdir(parents=True)
        for level in (base, base / "l1", base / "l1" / "l2"):
            (level / "sentinel").write_bytes(b"s")
        (base / "outside").mkdir()
        (base / "outside" / "secret").write_bytes(b"secret")
        yield base, target


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entries(), min_size=1, max_size=8))
def test_random_archives_never_write_outside_the_target(members: list[Entry]) -> None:
    with nested_target() as (base, target):
        fill = {"{out}": str(base / "outside"), "{base}": str(base)}
        concrete = []
        for e in members:
            link = e.link
            for key, value in fill.items():
                link = link.replace(key, value)
            concrete.append(Entry(e.name, e.kind, e.data, link, e.mode, e.mtime))
        before = {k: v for k, v in tree(base).items() if not k.startswith("l1/l2/root")}
        with contextlib.suppress(InvalidParameter):
            archive.unpack(io.BytesIO(tar_bytes(*concrete)), target, same_owner=False)
        after = {k: v for k, v in tree(base).items() if not k.startswith("l1/l2/root")}
        assert after == before
