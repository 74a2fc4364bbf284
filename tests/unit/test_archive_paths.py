"""Docker's path rules of the archive API: container paths, entry names, link checks,
Go file modes, and symlink resolution that never leaves the root."""

from __future__ import annotations

import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from essaim.engine.tar_paths import (
    Breakout,
    archive_prefix,
    check_symlink,
    container_path,
    entry_name,
    entry_parts,
    follow_in_scope,
    go_file_mode,
    hardlink_parts,
    split_last,
)  # fmt: skip
from essaim.errors import InvalidParameter

pytestmark = pytest.mark.unit

names = st.lists(
    st.sampled_from(["a", "b", "..", ".", "", "etc", "x y"]), min_size=0, max_size=8
).map("/".join)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/etc/hostname", "/etc/hostname"),
        ("etc/hostname", "/etc/hostname"),
        ("/tmp/", "/tmp/"),
        ("/tmp/.", "/tmp/."),
        ("/tmp/./", "/tmp/./"),
        ("/", "/"),
        ("/../../etc", "/etc"),
        ("//a//b/../c", "/a/c"),
        (".", "/."),
    ],
)
def test_container_path_keeps_trailing_dot_and_slash(given: str, expected: str) -> None:
    assert container_path(given) == expected


def test_container_path_refuses_empty() -> None:
    with pytest.raises(InvalidParameter, match="Path cannot be empty"):
        container_path("")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/etc/hostname", (["etc"], "hostname")),
        ("/etc/", (["etc"], None)),
        ("/etc/.", (["etc"], None)),
        ("/", ([], None)),
    ],
)
def test_split_last_follows_only_directory_forms(
    path: str, expected: tuple[list[str], str | None]
) -> None:
    assert split_last(path) == expected


@pytest.mark.parametrize(
    ("st_mode", "go_mode"),
    [
        (stat.S_IFDIR | 0o755, 2147484141),  # the CLI's directory test value
        (stat.S_IFREG | 0o644, 0o644),
        (stat.S_IFLNK | 0o777, (1 << 27) | 0o777),
        (stat.S_IFCHR | 0o666, (1 << 26) | (1 << 21) | 0o666),
        (stat.S_IFBLK | 0o660, (1 << 26) | 0o660),
        (stat.S_IFIFO | 0o644, (1 << 25) | 0o644),
        (stat.S_IFSOCK | 0o755, (1 << 24) | 0o755),
        (stat.S_IFREG | 0o4755, (1 << 23) | 0o755),
        (stat.S_IFDIR | 0o1777, (1 << 31) | (1 << 20) | 0o777),
    ],
)
def test_go_file_mode(st_mode: int, go_mode: int) -> None:
    assert go_file_mode(st_mode) == go_mode


@pytest.mark.parametrize(
    ("prefix_of", "rel", "is_dir", "name"),
    [
        ("/etc", [], True, "etc/"),
        ("/etc", ["passwd"], False, "etc/passwd"),
        ("/etc/", ["x", "y"], True, "etc/x/y/"),
        ("/etc/.", [], True, "./"),
        ("/etc/.", ["passwd"], False, "passwd"),
        ("/", [], True, "/"),
        ("/", ["bin"], True, "/bin/"),
        ("/etc/hostname", [], False, "hostname"),
    ],
)
def test_entry_names_start_with_the_asked_name(
    prefix_of: str, rel: list[str], is_dir: bool, name: str
) -> None:
    assert entry_name(archive_prefix(prefix_of), rel, is_dir) == name


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("a/b", ["a", "b"]),
        ("./a/./b/", ["a", "b"]),
        ("/etc/passwd", ["etc", "passwd"]),
        ("a/../b", ["b"]),
        ("./", []),
    ],
)
def test_entry_parts(name: str, parts: list[str]) -> None:
    assert entry_parts(name, "/tmp") == parts


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/../x", "./.."])
def test_entry_names_climbing_out_are_a_breakout(name: str) -> None:
    with pytest.raises(Breakout, match="is outside of"):
        entry_parts(name, "/tmp")


@pytest.mark.parametrize(
    ("entry", "target", "refused"),
    [
        (["link"], "/etc/passwd", False),  # absolute: read inside the root
        (["link"], "file", False),
        (["d", "link"], "../file", False),
        (["link"], "../etc/passwd", True),
        (["d", "link"], "../../x", True),
        (["d", "link"], "x/../../../y", True),
        (["d", "link"], "x/../../y", False),
    ],
)
def test_symlinks_climbing_out_of_the_destination_are_refused(
    entry: list[str], target: str, refused: bool
) -> None:
    if refused:
        with pytest.raises(Breakout, match="invalid symlink"):
            check_symlink(entry, target, "/tmp")
    else:
        check_symlink(entry, target, "/tmp")


def test_hardlinks_are_named_from_the_destination() -> None:
    assert hardlink_parts("/etc/passwd", "/tmp") == ["etc", "passwd"]
    assert hardlink_parts("a/b", "/tmp") == ["a", "b"]
    for bad in ("../outside", "", "/"):
        with pytest.raises(Breakout, match="invalid hardlink"):
            hardlink_parts(bad, "/tmp")


@given(names)
def test_entry_parts_never_climb(name: str) -> None:
    try:
        parts = entry_parts(name, "/d")
    except Breakout:
        return
    assert all(p not in ("", ".", "..") and "/" not in p for p in parts)


@given(st.integers(min_value=0, max_value=4), names)
def test_accepted_symlinks_stay_under_the_destination(depth: int, target: str) -> None:
    entry = ["d"] * depth + ["link"]
    try:
        check_symlink(entry, target, "/dest")
    except Breakout:
        return
    if target.startswith("/"):
        return
    # Resolved lexically from the link's directory, it stays at or under the destination.
    level = depth
    for part in target.split("/"):
        if part == "..":
            level -= 1
        elif part not in ("", "."):
            level += 1
        assert level >= 0


def test_follow_in_scope_keeps_links_in_the_root() -> None:
    links = {
        ("abs",): "/etc",
        ("up",): "../../../../etc",
        ("etc", "alt"): "hostname",
        ("loop",): "loop",
    }

    def readlink(parts: list[str]) -> str | None:
        return links.get(tuple(parts))

    assert follow_in_scope(["abs", "passwd"], readlink) == ["etc", "passwd"]
    assert follow_in_scope(["up", "shadow"], readlink) == ["etc", "shadow"]
    assert follow_in_scope(["etc", "alt"], readlink) == ["etc", "hostname"]
    assert follow_in_scope(["missing", "x"], readlink) == ["missing", "x"]
    with pytest.raises(InvalidParameter, match="too many links"):
        follow_in_scope(["loop"], readlink)


@given(st.lists(names, max_size=4), names)
def test_follow_in_scope_never_yields_dot_dot(targets: list[str], path: str) -> None:
    table = {("l", str(i)): t for i, t in enumerate(targets)}

    def readlink(parts: list[str]) -> str | None:
        return table.get(tuple(parts[-2:])) if len(parts) >= 2 else None

    try:
        resolved = follow_in_scope(path.split("/"), readlink)
    except InvalidParameter:
        return
    assert all(p not in ("", ".", "..") for p in resolved)
