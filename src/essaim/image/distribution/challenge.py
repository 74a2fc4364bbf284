"""`WWW-Authenticate` challenges (RFC 7235): the scheme and its parameters, such as
Bearer's realm, service and scope, as registries send them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*,?')
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic"
    params: dict[str, str] = field(default_factory=dict)


def parse(header_values: list[str]) -> list[Challenge]:
    """Every challenge in the headers; a header may carry several, comma-separated."""
    out: list[Challenge] = []
    for value in header_values:
        pos = 0
        while pos < len(value):
            m = _SCHEME.match(value, pos)
            if m is None:
                break
            scheme = m.group(1).lower()
            pos = m.end()
            params: dict[str, str] = {}
            while pos < len(value):
                p = _PARAM.match(value, pos)
                if p is None:
                    break
                quoted, bare = p.group(2), p.group(3)
                text = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
                params[p.group(1).lower()] = text
                pos = p.end()
            out.append(Challenge(scheme, params))
            while pos < len(value) and value[pos] in ", ":
                pos += 1
    return out
