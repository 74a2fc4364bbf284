"""Extraction into a container directory (`docker cp` in): Docker's rules for what lands
where, and whatever the archive's names and links, nothing outside the root is touched."""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from essaim.engine.extract import ExtractionPointMissing, ExtractOptions, extract
from essaim.engine.in_root import open_root
from essaim.errors import InvalidParameter

pytestmark = pytest.mark.unit

OWN = ExtractOptions(owner=(os.getuid(), os.getgid()))
STRICT = ExtractOptions(no_overwrite_dir_non_dir=True, owner=(os.getuid(), os.getgid()))


@dataclass(frozen=True)
class Entry:
    name: str
    kind: bytes = tarfile.REGTYPE
    data: bytes = b"x"
    link: str = ""
    mode: int = 0o644


def tar_of(*entries: Entry) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type, info.mode, info.linkname = e.kind, e.mode, e.link
            info.mtime = 1_600_000_000
            if e.kind == tarfile.REGTYPE:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


@dataclass
class Host:
    """A container root next to a planted host directory that must stay untouched."""

    root: Path
    outside: Path

    def snapshot(self) -> dict[str, bytes | str]:
        seen: dict[str, bytes | str] = {}
        for path in sorted(self.outside.rglob("*")):
            key = str(path.relative_to(self.outside))
            seen[key] = os.readlink(path) if path.is_symlink() else path.read_bytes()
        return seen

    def extract(self, data: bytes, dest: str = "/", options: ExtractOptions = OWN) -> None:
        fd = open_root(str(self.root))
        try:
            extract(fd, dest, io.BytesIO(data), options)
        finally:
            os.close(fd)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "tmp").mkdir(parents=True)
    outside.mkdir()
    (outside / "target").write_bytes(b"precious")
    yield Host(root, outside)


def test_files_and_directories_land_under_the_destination(host: Host) -> None:
    host.extract(tar_of(Entry("d/", tarfile.DIRTYPE, mode=0o750), Entry("d/f", data=b"hi")), "/tmp")
    assert (host.root / "tmp/d/f").read_bytes() == b"hi"
    assert (host.root / "tmp/d").stat().st_mode & 0o777 == 0o750


def test_missing_parents_are_made(host: Host) -> None:
    host.extract(tar_of(Entry("a/b/c")), "/tmp")
    assert (host.root / "tmp/a/b/c").is_file()


def test_destination_must_exist_and_be_a_directory(host: Host) -> None:
    (host.root / "file").write_text("x")
    with pytest.raises(ExtractionPointMissing):
        host.extract(tar_of(Entry("f")), "/nope")
    with pytest.raises(InvalidParameter, match="extraction point is not a directory"):
        host.extract(tar_of(Entry("f")), "/file")


def test_no_overwrite_dir_non_dir(host: Host) -> None:
    (host.root / "tmp/d").mkdir()
    (host.root / "tmp/f").write_text("x")
    with pytest.raises(InvalidParameter, match='cannot overwrite directory "/tmp/d"'):
        host.extract(tar_of(Entry("d")), "/tmp", STRICT)
    with pytest.raises(InvalidParameter, match='cannot overwrite non-directory "/tmp/f"'):
        host.extract(tar_of(Entry("f/", tarfile.DIRTYPE)), "/tmp", STRICT)
    # Without the flag a file replaces the directory, as under moby.
    host.extract(tar_of(Entry("d", data=b"now a file")), "/tmp", OWN)
    assert (host.root / "tmp/d").read_bytes() == b"now a file"


def test_destination_symlink_is_followed_inside_the_root(host: Host) -> None:
    (host.root / "to-outside").symlink_to(host.outside)  # absolute: means root/<that path>
    os.makedirs(host.root / str(host.outside).lstrip("/"))
    host.extract(tar_of(Entry("target", data=b"mine")), "/to-outside")
    assert (host.outside / "target").read_bytes() == b"precious"
    assert (host.root / str(host.outside).lstrip("/") / "target").read_bytes() == b"mine"


MALICIOUS = {
    "dot-dot": [Entry("../outside/target", data=b"pwned")],
    "deep-dot-dot": [Entry("a/../../outside/target", data=b"pwned")],
    "relative-symlink-then-write": [
        Entry("up", tarfile.SYMTYPE, link="../outside"),
        Entry("up/target", data=b"pwned"),
    ],
    "hardlink-out": [Entry("h", tarfile.LNKTYPE, link="../outside/target")],
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_archives_climbing_out_are_refused(host: Host, case: str) -> None:
    before = host.snapshot()
    with pytest.raises(InvalidParameter):
        host.extract(tar_of(*MALICIOUS[case]), "/tmp")
    assert host.snapshot() == before


def test_absolute_names_and_links_stay_in_the_root(host: Host) -> None:
    before = host.snapshot()
    abs_outside = str(host.outside)
    entries = [
        Entry(abs_outside + "/target", data=b"in root"),
        Entry("evil", tarfile.SYMTYPE, link=abs_outside),
        Entry("evil/target", data=b"through link"),
        Entry("evil/new", data=b"new"),
        Entry("root-link", tarfile.SYMTYPE, link="/"),
        Entry("root-link" + abs_outside + "/third", data=b"third"),
    ]
    host.extract(tar_of(*entries), "/")
    assert host.snapshot() == before
    inside = host.root / abs_outside.lstrip("/")
    assert (inside / "target").read_bytes() == b"through link"
    assert (inside / "new").read_bytes() == b"new"
    assert (inside / "third").read_bytes() == b"third"


def test_existing_container_symlinks_lead_into_the_root(host: Host) -> None:
    """The container's own absolute symlink (`/etc -> /host/path`) is the container's
    path, never the host's."""
    before = host.snapshot()
    (host.root / "etc").symlink_to(host.outside)
    (host.root / "rel").symlink_to("../../../../../../../../" + str(host.outside).lstrip("/"))
    # A hard link whose target goes through the container's link: resolved in the root.
    with pytest.raises(InvalidParameter):
        host.extract(tar_of(Entry("h", tarfile.LNKTYPE, link="/etc/target")), "/")
    # Its target does not exist in the root: nothing to write into (moby fails alike).
    with pytest.raises(InvalidParameter, match="No such file"):
        host.extract(tar_of(Entry("etc/target", data=b"a")), "/")
    os.makedirs(host.root / str(host.outside).lstrip("/"))
    host.extract(tar_of(Entry("etc/target", data=b"a"), Entry("rel/other", data=b"b")), "/")
    assert host.snapshot() == before
    inside = host.root / str(host.outside).lstrip("/")
    assert (inside / "target").read_bytes() == b"a"
    assert (inside / "other").read_bytes() == b"b"


def test_a_file_replacing_a_symlink_does_not_write_through_it(host: Host) -> None:
    before = host.snapshot()
    (host.root / "tmp/f").symlink_to(host.outside / "target")
    host.extract(tar_of(Entry("f", data=b"replaced")), "/tmp")
    assert host.snapshot() == before
    assert not (host.root / "tmp/f").is_symlink()
    assert (host.root / "tmp/f").read_bytes() == b"replaced"


def test_hard_links_inside_the_destination_work(host: Host) -> None:
    host.extract(tar_of(Entry("a", data=b"same"), Entry("b", tarfile.LNKTYPE, link="a")), "/tmp")
    assert os.stat(host.root / "tmp/a").st_ino == os.stat(host.root / "tmp/b").st_ino


def test_compressed_and_empty_archives(host: Host) -> None:
    import gzip

    host.extract(gzip.compress(tar_of(Entry("z", data=b"gz"))), "/tmp")
    assert (host.root / "tmp/z").read_bytes() == b"gz"
    host.extract(b"", "/tmp")
    with pytest.raises(InvalidParameter):
        host.extract(b"not a tar at all" * 64, "/tmp")


_names = st.lists(
    st.sampled_from(["a", "b", "..", ".", "up", "abs", "root"]), min_size=1, max_size=5
)
_kinds = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            _names.map("/".join),
            _kinds,
            st.sampled_from(["", "..", "../..", "/", "OUTSIDE", "OUTSIDE/target", "a", "../a"]),
            st.booleans(),
        ),
        max_size=8,
    ),
    st.sampled_from(["/", "/tmp", "/tmp/a"]),
)
def test_random_archives_never_write_outside(
    tmp_path: Path, items: list[tuple[str, bytes, str, bool]], dest: str
) -> None:
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(dir=tmp_path))
    try:
        h = Host(base / "root", base / "outside")
        (h.root / "tmp/a").mkdir(parents=True)
        h.outside.mkdir()
        (h.outside / "target").write_bytes(b"precious")
        (h.root / "abs").symlink_to(h.outside)
        before = h.snapshot()
        entries = [
            Entry(name, kind, link=link.replace("OUTSIDE", str(h.outside)), data=b"pwned")
            for name, kind, link, _ in items
        ]
        strict = STRICT if items and items[0][3] else OWN
        with contextlib.suppress(InvalidParameter, ExtractionPointMissing):
            h.extract(tar_of(*entries), dest, strict)
        assert h.snapshot() == before
        assert (h.outside / "target").read_bytes() == b"precious"
    finally:
        shutil.rmtree(base, ignore_errors=True)
