"""What the distribution spec allows as repository names, tags and digests, and the
errors a registry answers for anything else.
"""

from __future__ import annotations

import re

from essaim.image.registry.errors import RegistryError

NAME_MAX = 255  # distribution's limit on a repository name (the spec leaves it open)
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII)
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", re.ASCII)
# The algorithms we store; their hex length, so a digest names a well-formed path.
ALGORITHMS = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"[a-f0-9]+", re.ASCII)


def check_name(name: str) -> str:
    if len(name) > NAME_MAX or not _NAME.fullmatch(name):
        raise RegistryError("NAME_INVALID", detail={"name": name})
    return name


def is_tag(reference: str) -> bool:
    return _TAG.fullmatch(reference) is not None


def check_tag(tag: str) -> str:
    if not is_tag(tag):
        raise RegistryError("TAG_INVALID", f"invalid tag {tag!r}", detail={"tag": tag})
    return tag


def is_digest(reference: str) -> bool:
    algorithm, sep, hex_ = reference.partition(":")
    return bool(sep) and algorithm in ALGORITHMS and _valid_hex(algorithm, hex_)


def _valid_hex(algorithm: str, hex_: str) -> bool:
    return len(hex_) == ALGORITHMS[algorithm] and _HEX.fullmatch(hex_) is not None


def check_digest(digest: str) -> str:
    """A digest we can store, or DIGEST_INVALID (the code the spec gives for both a
    malformed digest and one naming an algorithm the registry does not support)."""
    algorithm, sep, hex_ = digest.partition(":")
    if not sep or algorithm not in ALGORITHMS or not _valid_hex(algorithm, hex_):
        raise RegistryError("DIGEST_INVALID", f"invalid digest {digest!r}", {"digest": digest})
    return digest
