"""Option values as Go code reads them, with Go's error texts: sizes as go-units parses
them (FromHumanSize, RAMInBytes), strconv.Atoi and strconv.ParseBool.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping

# go-units' parseSize: a number, an optional space, then an optional unit (k, m, g, t, p),
# optionally followed by "b" or "ib"; case does not matter.
_DECIMAL = {"k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}
_BINARY = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_GO_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_GO_INT = re.compile(r"[+-]?\d+")


def parse_human_size(text: str) -> int:
    """go-units' FromHumanSize (what the json-file and local drivers read `max-size`
    with): SI units, "10k" is 10000 bytes."""
    return _parse_size(text, _DECIMAL)


def parse_ram_size(text: str) -> int:
    """go-units' RAMInBytes: binary units, "10k" is 10240 bytes."""
    return _parse_size(text, _BINARY)


def _parse_size(text: str, units: Mapping[str, int]) -> int:
    sep = max(text.rfind(c) for c in "0123456789. ")
    if sep == -1:
        raise ValueError(f"invalid size: '{text}'")
    suffix = text[sep + 1 :]
    number = text[:sep] if text[sep] == " " else text[: sep + 1]
    size = _go_parse_float(number)
    if size < 0:
        raise ValueError(f"invalid size: '{text}'")
    if not suffix:
        return int(size)
    if len(suffix) > 3:
        raise ValueError(f"invalid suffix: '{suffix}'")
    suffix = suffix.lower()
    if suffix[0] == "b":
        if len(suffix) > 1:
            raise ValueError(f"invalid suffix: '{suffix}'")
        return int(size)
    multiplier = units.get(suffix[0])
    if (
        multiplier is None
        or (len(suffix) == 2 and suffix[1] != "b")
        or (len(suffix) == 3 and suffix[1:] != "ib")
    ):
        raise ValueError(f"invalid suffix: '{suffix}'")
    return int(size * multiplier)


def _go_parse_float(text: str) -> float:
    if _GO_FLOAT.fullmatch(text) is None:
        raise ValueError(f"strconv.ParseFloat: parsing {_go_quote(text)}: invalid syntax")
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"strconv.ParseFloat: parsing {_go_quote(text)}: value out of range")
    return value


def atoi(text: str) -> int:
    """Go's strconv.Atoi, with its error text."""
    if _GO_INT.fullmatch(text) is None:
        raise ValueError(f"strconv.Atoi: parsing {_go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"strconv.Atoi: parsing {_go_quote(text)}: value out of range")
    return value


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool, with its error text."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"strconv.ParseBool: parsing {_go_quote(text)}: invalid syntax")


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
