"""Typed reads of the fields of a request's JSON body, refused with the 400 wording of
Go's JSON decoding (dockerd's) when a client sends the wrong type.
"""

from __future__ import annotations

from typing import Any

from essaim.errors import InvalidParameter


def strings(value: Any, field: str) -> list[str]:
    """A value Docker accepts as a string list: null, one string, or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidParameter(f"json: cannot unmarshal {type(value).__name__} into {field}")


def string(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidParameter(f"json: cannot unmarshal {field}: expected a string")
    return value


def integer(value: Any, field: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(f"json: cannot unmarshal {field}: expected an integer")
    return value


def string_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return dict(value)
    raise InvalidParameter(f"json: cannot unmarshal {field}: expected an object of strings")
