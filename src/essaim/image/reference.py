"""Docker image references: parse, validate and normalise `busybox`, `me/img:v1`,
`localhost:5000/bb@sha256:...`; store the normalised form, show the familiar one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from essaim.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# The grammar of the distribution project's reference package, piece by piece.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

_REFERENCE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_TAG_ONLY = re.compile(_TAG, re.ASCII)
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")
_SHA256_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed, normalised reference: `domain` is never empty, docker.io paths of one
    component carry their `library/` prefix."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The normalised repository: `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    def familiar_name(self) -> str:
        """The repository as users type it: `busybox`, `me/img`, `localhost:5000/bb`."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        first = path.split("/", 1)[0]
        if any(c in first for c in ".:") or first == "localhost":
            # Without its domain, this path would read back as a registry host.
            return self.name
        if path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in path[len(OFFICIAL_REPO_PREFIX) :]:
            path = path[len(OFFICIAL_REPO_PREFIX) :]
        return path

    def _suffix(self) -> str:
        out = ""
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def normalized(self) -> str:
        return self.name + self._suffix()

    def familiar(self) -> str:
        return self.familiar_name() + self._suffix()

    def with_default_tag(self) -> Reference:
        """Docker's TagNameOnly: a bare name means `:latest`; a digest stays as it is."""
        if self.tag is None and self.digest is None:
            return replace(self, tag=DEFAULT_TAG)
        return self

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_ONLY.fullmatch(tag):
            raise InvalidParameter(f"invalid tag format: {tag!r}" if tag else "invalid tag format")
        return Reference(self.domain, self.path, tag, None)

    def name_only(self) -> Reference:
        return Reference(self.domain, self.path)

    def __str__(self) -> str:
        return self.normalized()


def _split_docker_domain(name: str) -> tuple[str, str]:
    """A first component is a domain if it has a dot or a port, is `localhost`, or has
    an uppercase letter (which no path component may have)."""
    i = name.find("/")
    first = name[:i]
    if i == -1 or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, name[i + 1 :]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _parse_strict(text: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of a fully qualified reference, with Docker's errors."""
    m = _REFERENCE.fullmatch(text)
    if m is None:
        if not text:
            raise InvalidParameter(
                "invalid reference format: repository name must have at least one component"
            )
        if _REFERENCE.fullmatch(text.lower()) is not None:
            raise InvalidParameter("invalid reference format: repository name must be lowercase")
        raise InvalidParameter("invalid reference format")
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidParameter(
            f"invalid reference format: repository name must not be more than "
            f"{NAME_TOTAL_LENGTH_MAX} characters"
        )
    if digest is not None:
        validate_digest(digest)
    return name, tag, digest


def validate_digest(digest: str) -> None:
    """The digest rules of go-digest for the algorithms we know."""
    algorithm, _, hex_ = digest.partition(":")
    sizes = {"sha256": 64, "sha384": 96, "sha512": 128}
    if algorithm not in sizes:
        raise InvalidParameter("unsupported digest algorithm")
    if len(hex_) != sizes[algorithm]:
        raise InvalidParameter("invalid checksum digest length")
    if not re.fullmatch(r"[a-f0-9]+", hex_):
        raise InvalidParameter("invalid checksum digest format")


@lru_cache(maxsize=4096)
def parse(ref: str) -> Reference:
    """Docker's ParseNormalizedNamed: `busybox` -> docker.io/library/busybox (no tag added;
    see `Reference.with_default_tag`). Raises InvalidParameter with Docker's texts."""
    if _IDENTIFIER.fullmatch(ref):
        raise InvalidParameter(
            f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_docker_domain(ref)
    tag_sep = remainder.find(":")
    remote = remainder if tag_sep == -1 else remainder[:tag_sep]
    if remote.lower() != remote:
        raise InvalidParameter(
            f"invalid reference format: repository name ({remote}) must be lowercase"
        )
    name, tag, digest = _parse_strict(f"{domain}/{remainder}")
    # _split_docker_domain decided what the domain is; the path is whatever follows it.
    path = name[len(domain) + 1 :]
    return Reference(domain, path, tag, digest)


def parse_tagged(ref: str) -> Reference:
    """`parse` plus the implicit `:latest` Docker adds when neither tag nor digest is given."""
    return parse(ref).with_default_tag()


def is_image_id(value: str) -> bool:
    """A full image id: 64 lowercase hex digits, with or without `sha256:`."""
    return bool(_IDENTIFIER.fullmatch(value) or _SHA256_DIGEST.fullmatch(value))


def repo_tag_reference(repo: str, tag: str | None) -> Reference:
    """The reference named by a `repo` (which may carry its own tag, as `docker import`
    sends it) and an optional `tag` query parameter; refuses digests like Docker."""
    ref = parse(repo)
    if ref.digest is not None:
        raise InvalidParameter("refusing to create a tag with a digest reference")
    if tag:
        ref = ref.with_tag(tag)
    ref = ref.with_default_tag()
    if ref.familiar_name() == "sha256":
        raise InvalidParameter("refusing to create an ambiguous tag using digest algorithm as name")
    return ref


@lru_cache(maxsize=4096)
def familiar(normalized: str) -> str:
    """The familiar form of a stored, normalised reference string."""
    return parse(normalized).familiar()


def familiar_name(ref: str) -> str:
    """The familiar repository name of `ref` (`docker.io/library/busybox:1` -> `busybox`),
    or `ref` unchanged when it is not a reference (an id, a typo): for filters."""
    try:
        return parse(ref).familiar_name()
    except InvalidParameter:
        return ref


class BadPattern(InvalidParameter):
    """A `reference` filter that is not a valid shell pattern (Go's path.ErrBadPattern)."""

    def __init__(self) -> None:
        super().__init__("syntax error in pattern")


def _pattern_char(pattern: str, i: int) -> tuple[str, int]:
    """One (maybe escaped) character of a bracket expression, and the index after it."""
    if i >= len(pattern) or pattern[i] in "-]":
        raise BadPattern()
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise BadPattern()
    return pattern[i], i + 1


def _bracket(pattern: str, i: int) -> tuple[str, int]:
    """The regex for the bracket expression starting after `[` at `i`; Go negates with
    `^` and, unlike `*` and `?`, lets a class match `/`."""
    negated = i < len(pattern) and pattern[i] == "^"
    if negated:
        i += 1
    ranges: list[tuple[str, str]] = []
    while True:
        if i < len(pattern) and pattern[i] == "]" and ranges:
            i += 1
            break
        lo, i = _pattern_char(pattern, i)
        hi = lo
        if i < len(pattern) and pattern[i] == "-":
            hi, i = _pattern_char(pattern, i + 1)
        ranges.append((lo, hi))
    body = "".join(
        re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}"
        for lo, hi in ranges
        if lo <= hi  # an inverted range matches nothing, as in Go
    )
    if not body:
        return ("(?s:.)" if negated else "(?!)"), i
    return f"[{'^' if negated else ''}{body}]", i


@lru_cache(maxsize=256)
def _compile_pattern(pattern: str) -> re.Pattern[str]:
    """Go's path.Match syntax as a regex: `*` and `?` never match `/`."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            regex, i = _bracket(pattern, i)
            out.append(regex)
        elif ch == "\\":
            if i >= len(pattern):
                raise BadPattern()
            out.append(re.escape(pattern[i]))
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def familiar_match(pattern: str, ref: Reference) -> bool:
    """Docker's FamiliarMatch, the `reference` filter of `docker images`: `pattern`
    (path.Match syntax) against the familiar `name:tag` (or `name@digest`), then
    against the familiar name alone. Raises BadPattern for a malformed pattern."""
    regex = _compile_pattern(pattern)
    return bool(regex.fullmatch(ref.familiar()) or regex.fullmatch(ref.familiar_name()))
