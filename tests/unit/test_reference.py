"""Image references: Docker's parsing, normalisation and error texts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from essaim.errors import InvalidParameter
from essaim.image import reference
from essaim.image.reference import Reference, parse, parse_tagged, repo_tag_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "normalized", "familiar"),
    [
        ("busybox", "docker.io/library/busybox", "busybox"),
        ("busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox", "busybox"),
        ("index.docker.io/busybox:1", "docker.io/library/busybox:1", "busybox:1"),
        ("me/img", "docker.io/me/img", "me/img"),
        ("me/img:v2", "docker.io/me/img:v2", "me/img:v2"),
        ("localhost:5000/bb:v1", "localhost:5000/bb:v1", "localhost:5000/bb:v1"),
        ("localhost/bb", "localhost/bb", "localhost/bb"),
        ("example.com/a/b/c:t", "example.com/a/b/c:t", "example.com/a/b/c:t"),
        ("[::1]:5000/x:y", "[::1]:5000/x:y", "[::1]:5000/x:y"),
        (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}"),
        (f"bb:v1@{DIGEST}", f"docker.io/library/bb:v1@{DIGEST}", f"bb:v1@{DIGEST}"),
    ],
)
def test_parse_normalises_and_shows_familiar(text: str, normalized: str, familiar: str) -> None:
    ref = parse(text)
    assert ref.normalized() == normalized
    assert ref.familiar() == familiar


def test_busybox_forms_are_the_same_image_name() -> None:
    forms = ["busybox", "busybox:latest", "docker.io/library/busybox:latest"]
    assert {parse_tagged(f).normalized() for f in forms} == {"docker.io/library/busybox:latest"}
    assert parse_tagged("busybox").familiar() == "busybox:latest"


def test_digest_reference_gets_no_default_tag() -> None:
    assert parse_tagged(f"busybox@{DIGEST}").tag is None


def test_uppercase_repository_is_refused_with_dockers_text() -> None:
    with pytest.raises(InvalidParameter) as err:
        parse("Busybox")
    assert str(err.value) == (
        "invalid reference format: repository name (library/Busybox) must be lowercase"
    )


@pytest.mark.parametrize(
    "text", ["", "busybox:", "a//b", ":tag", "busybox@sha256:abc", "bb:" + "x" * 129, "-bb"]
)
def test_malformed_references_are_invalid_format(text: str) -> None:
    with pytest.raises(InvalidParameter, match=r"^invalid reference format"):
        parse(text)


def test_bare_64_hex_is_not_a_repository_name() -> None:
    with pytest.raises(InvalidParameter, match="cannot specify 64-byte hexadecimal strings"):
        parse("a" * 64)


def test_uppercase_first_component_is_a_domain() -> None:
    # As in Docker: a component with capitals cannot be a path, so it must be a host.
    assert parse("Registry/x").domain == "Registry"


def test_repo_tag_reference_splits_the_tag_out_of_repo() -> None:
    assert repo_tag_reference("myimg:v1", None).normalized() == "docker.io/library/myimg:v1"
    assert repo_tag_reference("docker.io/library/myimg", "v2").familiar() == "myimg:v2"
    assert repo_tag_reference("localhost:5000/bb", "").familiar() == "localhost:5000/bb:latest"


def test_repo_tag_reference_refuses_digests_and_bad_tags() -> None:
    with pytest.raises(InvalidParameter, match="digest reference"):
        repo_tag_reference(f"bb@{DIGEST}", None)
    with pytest.raises(InvalidParameter, match="invalid tag format"):
        repo_tag_reference("bb", "-bad")
    with pytest.raises(InvalidParameter, match="ambiguous"):
        repo_tag_reference("sha256", "abc")


def test_is_image_id() -> None:
    assert reference.is_image_id("a" * 64)
    assert reference.is_image_id("sha256:" + "a" * 64)
    assert not reference.is_image_id("a" * 63)
    assert not reference.is_image_id("busybox")


def test_familiar_name_never_raises() -> None:
    assert reference.familiar_name("docker.io/library/busybox:1") == "busybox"
    assert reference.familiar_name("Not A Ref") == "Not A Ref"


@pytest.mark.parametrize(
    ("pattern", "ref", "matches"),
    [
        ("busybox", "busybox:latest", True),  # the name alone
        ("busybox:latest", "busybox:latest", True),
        ("busybox:1", "busybox:latest", False),
        ("busy*", "busybox:latest", True),
        ("*:latest", "busybox:latest", True),
        ("*", "busybox:latest", True),
        ("*", "me/img:v1", False),  # `*` does not cross `/`, as Go's path.Match
        ("*/*", "me/img:v1", True),
        ("localhost:5000/*", "localhost:5000/bb:v1", True),
        ("*", "localhost:5000/bb:v1", False),
        ("docker.io/library/busybox", "busybox:latest", False),  # familiar forms only
        ("b?sybox", "busybox:latest", True),
        ("b[a-u]sybox", "busybox:latest", True),
        ("b[^u]sybox", "busybox:latest", False),
        ("b[!x]sybox", "busybox:latest", False),  # `!` is a plain character in Go's classes
        (r"busy\box", "busybox:latest", True),
        (f"busybox@{DIGEST}", f"busybox@{DIGEST}", True),
    ],
)
def test_familiar_match_is_dockers_reference_filter(pattern: str, ref: str, matches: bool) -> None:
    assert reference.familiar_match(pattern, parse(ref)) is matches


@pytest.mark.parametrize("pattern", ["[", "busy[", "[]", "[-a]", "[a-]", "busy\\"])
def test_malformed_reference_pattern_is_refused(pattern: str) -> None:
    with pytest.raises(InvalidParameter, match=r"^syntax error in pattern$"):
        reference.familiar_match(pattern, parse("busybox"))


# -- properties

_alnum = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_separator = st.sampled_from([".", "_", "__", "-", "--"])
_component = st.builds(
    lambda first, rest: first + "".join(s + a for s, a in rest),
    _alnum,
    st.lists(st.tuples(_separator, _alnum), max_size=2),
)
_path = st.lists(_component, min_size=1, max_size=3).map("/".join)
_domain = st.sampled_from(
    ["", "docker.io/", "index.docker.io/", "localhost/", "localhost:5000/", "reg.example.com/"]
)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_digest = st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)


@st.composite
def references(draw: st.DrawFn) -> str:
    text = draw(_domain) + draw(_path)
    if draw(st.booleans()):
        text += ":" + draw(_tag)
    if draw(st.booleans()):
        text += "@" + draw(_digest)
    return text


@given(references())
def test_familiar_and_normalized_forms_parse_back_to_the_same_reference(text: str) -> None:
    ref = parse(text)
    assert parse(ref.normalized()) == ref
    assert parse(ref.familiar()) == ref
    assert parse(text.split("@")[0]).tag == ref.tag


@given(references())
def test_normalised_form_is_fully_qualified(text: str) -> None:
    ref = parse(text)
    assert ref.normalized().startswith(ref.domain + "/")
    if ref.domain == "docker.io":
        assert "/" in ref.path
    assert ref.domain != "index.docker.io"


@given(references())
def test_default_tag_only_for_bare_names(text: str) -> None:
    ref = parse(text)
    tagged = ref.with_default_tag()
    if ref.tag is None and ref.digest is None:
        assert tagged.tag == "latest"
    else:
        assert tagged == ref


@given(_path, st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=3))
def test_uppercase_anywhere_in_a_hub_path_is_refused(path: str, upper: str) -> None:
    with pytest.raises(InvalidParameter, match="must be lowercase"):
        parse(path + upper)


@given(st.text(max_size=40))
def test_parse_never_fails_with_anything_but_invalid_parameter(text: str) -> None:
    try:
        ref = parse(text)
    except InvalidParameter:
        return
    assert isinstance(ref, Reference)
    assert ref.path


@given(references())
def test_a_reference_matches_its_own_familiar_forms(text: str) -> None:
    ref = parse(text)
    assert reference.familiar_match(ref.familiar(), ref)
    assert reference.familiar_match(ref.familiar_name(), ref)
    # A lone `*` matches exactly the names with no `/` in their familiar form.
    assert reference.familiar_match("*", ref) is ("/" not in ref.familiar())
