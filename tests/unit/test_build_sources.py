"""COPY and ADD sources: names resolved in their root by the classic builder's rules and
messages, Go's wildcard matching, and cache keys that change exactly when what would be
copied changes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from essaim.build.sources import (
    CopySource,
    check_sources,
    is_url,
    resolve_sources,
    source_hash,
)
from essaim.build.wildcards import contains_wildcards, go_match
from essaim.errors import InvalidParameter, NotFound

pytestmark = pytest.mark.unit

# Go's own path/filepath match tests (pattern, name, matched); malformed patterns there
# (ErrBadPattern) match nothing here, as the classic builder ignores the error.
GO_MATCH_CASES = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", False),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "\u03b1", True),  # alpha
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("[]a]", "]", False),
    ("[-]", "-", False),
    ("[x-]", "x", False),
    ("[x-]", "-", False),
    ("[-x]", "x", False),
    ("\\", "a", False),
    ("[a-b-c]", "a", False),
    ("[", "a", False),
    ("[^", "a", False),
    ("[^bc", "a", False),
    ("a[", "a", False),
    ("a[", "ab", False),
    ("a/b[", "x", False),
    ("*x", "xxx", True),
    # A negated class is not kept from `/` in Go (unlike `*` and `?`).
    ("a[^x]b", "a/b", True),
]


@pytest.mark.parametrize(("pattern", "name", "matched"), GO_MATCH_CASES)
def test_go_match_agrees_with_go(pattern: str, name: str, matched: bool) -> None:
    assert go_match(pattern, name) is matched


_NAME = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/"), min_size=1)


@given(_NAME)
def test_a_name_with_every_character_escaped_matches_itself_only(name: str) -> None:
    escaped = "".join("\\" + ch for ch in name)
    assert go_match(escaped, name)
    assert not go_match(escaped, name + "x")
    assert not contains_wildcards(escaped)


@given(_NAME, _NAME)
def test_a_star_matches_any_one_component_never_two(a: str, b: str) -> None:
    assert go_match("*", a)
    assert not go_match("*", f"{a}/{b}")
    assert go_match("*/*", f"{a}/{b}")


def test_wildcards_are_stars_questions_and_classes_unless_escaped() -> None:
    assert contains_wildcards("*.txt")
    assert contains_wildcards("a?c")
    assert contains_wildcards("[ab]")
    assert not contains_wildcards("plain/name.txt")
    assert not contains_wildcards("a\\*b")


@pytest.fixture
def context(tmp_path: Path) -> Path:
    root = tmp_path / "context"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "b.txt").write_text("b")
    (root / ".hidden.txt").write_text("h")
    (root / "dir" / "c.txt").write_text("c")
    (root / "dir" / "sub" / "d.txt").write_text("d")
    (root / "to-a").symlink_to("a.txt")
    (root / "to-dir").symlink_to("/dir")
    (root / "escape").symlink_to("../../..")
    (root / "to-host").symlink_to("/etc/hostname")
    (root / "dangling").symlink_to("nowhere")
    return root


def names(sources: list[CopySource]) -> list[tuple[str, bool]]:
    return [(s.name, s.is_dir) for s in sources]


def resolve(root: Path, *patterns: str, from_image: bool = False) -> list[CopySource]:
    return resolve_sources(root, list(patterns), instruction="COPY", from_image=from_image)


def test_plain_names_resolve_to_files_and_directories(context: Path) -> None:
    sources = resolve(context, "a.txt", "dir", "dir/sub/d.txt")
    assert names(sources) == [("a.txt", False), ("dir", True), ("dir/sub/d.txt", False)]
    assert sources[2].path == context / "dir" / "sub" / "d.txt"


def test_leading_slash_and_dot_slash_are_taken_from_the_context(context: Path) -> None:
    assert names(resolve(context, "/a.txt", "./b.txt", "dir/../a.txt")) == [
        ("a.txt", False),
        ("b.txt", False),
        ("a.txt", False),
    ]


def test_the_context_itself_is_the_root_directory(context: Path) -> None:
    for pattern in (".", "./", "/"):
        [source] = resolve(context, pattern)
        assert (source.name, source.is_dir, source.path) == ("", True, context)


def test_wildcards_match_per_component_in_walk_order(context: Path) -> None:
    assert names(resolve(context, "*.txt")) == [
        (".hidden.txt", False),
        ("a.txt", False),
        ("b.txt", False),
    ]
    assert names(resolve(context, "dir/*")) == [("dir/c.txt", False), ("dir/sub", True)]
    assert names(resolve(context, "*/c.txt")) == [("dir/c.txt", False)]
    assert names(resolve(context, "[ab].txt", "dir/s?b")) == [
        ("a.txt", False),
        ("b.txt", False),
        ("dir/sub", True),
    ]


def test_a_wildcard_matching_a_symlink_copies_its_target(context: Path) -> None:
    [source] = resolve(context, "to-?")
    assert (source.name, source.path) == ("to-a", context / "a.txt")


def test_a_wildcard_does_not_walk_into_a_symlinked_directory(context: Path) -> None:
    assert resolve(context, "to-dir/*") == []


def test_a_wildcard_matching_nothing_gives_nothing(context: Path) -> None:
    assert resolve(context, "*.none", "nodir/*", "[") == []


def test_symlinks_are_followed_inside_the_context_only(context: Path) -> None:
    [to_a, to_dir, through] = resolve(context, "to-a", "to-dir", "escape/a.txt")
    assert (to_a.name, to_a.path) == ("to-a", context / "a.txt")
    assert (to_dir.path, to_dir.is_dir) == (context / "dir", True)
    # `..` from the link stops at the context's root, as from `/`.
    assert through.path == context / "a.txt"
    with pytest.raises(NotFound):
        resolve(context, "to-host")  # /etc/hostname of the context, which has none


def test_paths_leaving_the_context_are_forbidden_in_dockers_words(context: Path) -> None:
    for pattern in ("../x", "dir/../../x", ".."):
        with pytest.raises(InvalidParameter) as caught:
            resolve(context, pattern)
        assert caught.value.message == (
            f"COPY failed: forbidden path outside the build context: {pattern} ()"
        )


def test_a_path_through_a_file_is_forbidden_like_docker(context: Path) -> None:
    with pytest.raises(InvalidParameter, match=r"forbidden path .*: a\.txt/x \(\)$"):
        resolve(context, "a.txt/x")


def test_a_missing_file_is_blamed_on_the_context_or_dockerignore(context: Path) -> None:
    with pytest.raises(NotFound) as caught:
        resolve_sources(context, ["./missing"], instruction="ADD")
    assert caught.value.message == (
        "ADD failed: file not found in build context or excluded by .dockerignore: "
        "stat missing: file does not exist"
    )
    with pytest.raises(NotFound, match="stat dangling: file does not exist"):
        resolve(context, "dangling")


def test_a_missing_file_of_an_image_is_just_missing(context: Path) -> None:
    with pytest.raises(NotFound) as caught:
        resolve(context, "/usr/bin/nope", from_image=True)
    assert caught.value.message == "COPY failed: stat usr/bin/nope: file does not exist"


def test_copy_refuses_urls_add_leaves_them_to_the_download(context: Path) -> None:
    with pytest.raises(InvalidParameter) as caught:
        resolve(context, "https://127.0.0.1/x")
    assert caught.value.message == "COPY failed: source can't be a URL for COPY"
    assert is_url("http://127.0.0.1/x") and is_url("https://127.0.0.1/x")
    assert not is_url("ftp://127.0.0.1/x") and not is_url("http.txt")


def test_an_instruction_needs_a_source_and_a_directory_for_several(context: Path) -> None:
    two = resolve(context, "a.txt", "b.txt")
    check_sources(two, "/app/", instruction="COPY")
    with pytest.raises(InvalidParameter) as caught:
        check_sources(two, "/app", instruction="COPY")
    assert caught.value.message == (
        "When using COPY with more than one source file, "
        "the destination must be a directory and end with a /"
    )
    with pytest.raises(InvalidParameter, match=r"^COPY failed: no source files were specified$"):
        check_sources([], "/app/", instruction="COPY")
    unnamed = CopySource(context / "a.txt", "", False, url="http://127.0.0.1/")
    check_sources([unnamed], "/app/file", instruction="ADD")
    with pytest.raises(InvalidParameter) as caught:
        check_sources([unnamed], "/app/", instruction="ADD")
    assert caught.value.message == (
        "ADD failed: cannot determine filename for source http://127.0.0.1/"
    )


def key(root: Path, *patterns: str) -> str:
    return source_hash(resolve(root, *patterns))


def test_hash_kinds_and_stability(context: Path) -> None:
    assert key(context, "a.txt").startswith("file:")
    assert key(context, "dir").startswith("dir:")
    assert key(context, "a.txt", "dir").startswith("multi:")
    assert key(context, ".") == key(context, ".")
    assert len(key(context, "a.txt").partition(":")[2]) == 64


def test_the_file_hash_follows_content_mode_and_name_not_mtime(context: Path) -> None:
    before = key(context, "a.txt")
    os.utime(context / "a.txt", (1, 1))
    assert key(context, "a.txt") == before
    os.chmod(context / "a.txt", 0o600)
    after_mode = key(context, "a.txt")
    assert after_mode != before
    (context / "a.txt").write_text("A")
    assert key(context, "a.txt") != after_mode
    # A symlink is copied under its own name: its name is in the key.
    assert key(context, "to-a") != key(context, "a.txt")


def test_the_tree_hash_follows_every_entry(context: Path) -> None:
    base = key(context, "dir")
    os.utime(context / "dir" / "c.txt", (5, 5))
    os.utime(context / "dir" / "sub", (5, 5))
    assert key(context, "dir") == base
    changes = [
        lambda: (context / "dir" / "sub" / "d.txt").write_text("D"),
        lambda: os.chmod(context / "dir" / "sub", 0o700),
        lambda: (context / "dir" / "sub" / "new").write_text(""),
        lambda: (context / "dir" / "link").symlink_to("c.txt"),
        lambda: ((context / "dir" / "link").unlink(), (context / "dir" / "link").symlink_to("x")),
        lambda: (context / "dir" / "sub" / "d.txt").rename(context / "dir" / "sub" / "e.txt"),
        lambda: os.link(context / "dir" / "c.txt", context / "dir" / "hard"),
        lambda: os.mkfifo(context / "dir" / "pipe"),
    ]
    seen = {base}
    for change in changes:
        change()
        now = key(context, "dir")
        assert now not in seen
        seen.add(now)


def test_the_tree_hash_does_not_depend_on_the_directorys_own_name(context: Path) -> None:
    (context / "dir").rename(context / "renamed")
    before = key(context, "renamed")
    (context / "renamed").rename(context / "dir")
    assert key(context, "dir") == before


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_an_owner_change_changes_the_hash(context: Path) -> None:
    before_file, before_dir = key(context, "a.txt"), key(context, "dir")
    os.chown(context / "a.txt", 1234, 1234)
    os.chown(context / "dir" / "c.txt", 0, 4321)
    assert key(context, "a.txt") != before_file
    assert key(context, "dir") != before_dir


def test_a_multi_key_depends_on_order_and_every_source(context: Path) -> None:
    ab = key(context, "a.txt", "b.txt")
    assert key(context, "b.txt", "a.txt") != ab
    (context / "b.txt").write_text("B")
    assert key(context, "a.txt", "b.txt") != ab


def test_a_downloaded_files_known_digest_is_used_as_its_content(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"payload")
    sha = hashlib.sha256(b"payload").hexdigest()
    known = CopySource(path, "file", False, url="http://127.0.0.1/file", content_sha256=sha)
    read = CopySource(path, "file", False, url="http://127.0.0.1/file")
    assert source_hash([known]) == source_hash([read])
