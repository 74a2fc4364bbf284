"""Routes `METHOD /path` to handlers, after splitting off the `/v1.xx` version prefix.

`{name}` matches one path segment; `{name:path}` matches across slashes (image names).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from essaim import API_VERSION, MIN_API_VERSION
from essaim.api.request import Request
from essaim.api.responses import AnyResponse
from essaim.errors import InvalidParameter, NotFound

Handler = Callable[[Request], Awaitable[AnyResponse]]

_VERSION_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")
_PARAM = re.compile(r"\{(\w+)(?::(path))?\}")


def _compile(pattern: str) -> re.Pattern[str]:
    out, pos = [], 0
    for m in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("^" + "".join(out) + "/?$")


def split_version(path: str) -> tuple[tuple[int, int], str]:
    """(`version`, `path`) for a raw path; unversioned paths get the version we claim."""
    m = _VERSION_PREFIX.match(path)
    if not m:
        return API_VERSION, path
    version = (int(m.group(1)), int(m.group(2)))
    if version > API_VERSION:
        raise InvalidParameter(
            f"client version {version[0]}.{version[1]} is too new. "
            f"Maximum supported API version is {API_VERSION[0]}.{API_VERSION[1]}"
        )
    if version < MIN_API_VERSION:
        raise InvalidParameter(
            f"client version {version[0]}.{version[1]} is too old. "
            f"Minimum supported API version is {MIN_API_VERSION[0]}.{MIN_API_VERSION[1]}, "
            "please upgrade your client to a newer version"
        )
    return version, m.group(3)


@dataclass(frozen=True)
class _Route:
    method: str
    regex: re.Pattern[str]
    handler: Handler


class Router:
    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append(_Route(method, _compile(pattern), handler))

    def get(self, pattern: str, handler: Handler) -> None:
        self.add("GET", pattern, handler)
        self.add("HEAD", pattern, handler)

    def post(self, pattern: str, handler: Handler) -> None:
        self.add("POST", pattern, handler)

    def put(self, pattern: str, handler: Handler) -> None:
        self.add("PUT", pattern, handler)

    def delete(self, pattern: str, handler: Handler) -> None:
        self.add("DELETE", pattern, handler)

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        for route in self._routes:
            if route.method != method:
                continue
            m = route.regex.match(path)
            if m:
                return route.handler, m.groupdict()
        raise NotFound("page not found")
