"""Times as Go writes and reads them: RFC 3339 with up to nine fraction digits, for
containers' and images' timestamps (`Created`, `StartedAt`, tag times) and filters.
"""

from __future__ import annotations

import datetime as _dt
import re
import time

_RFC3339 = re.compile(
    r"(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)(?:\.(\d{1,9})\d*)?([Zz]|[+-]\d\d:\d\d)"
)


def format_rfc3339_nano(nanos: int) -> str:
    """A time in ns since the epoch the way Go's RFC3339Nano writes it in UTC (trailing
    zeros of the fraction dropped)."""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if fraction:
        text += f".{fraction:09d}".rstrip("0")
    return text + "Z"


def now_rfc3339() -> str:
    """UTC now with nanoseconds, as `created`, `StartedAt` and the like are written."""
    return format_rfc3339_nano(time.time_ns())


def rfc3339_nano(value: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time with up to 9 fraction digits
    (which `datetime` alone cannot read); None for an empty or unreadable value."""
    m = _RFC3339.fullmatch(value)
    if m is None:
        return None
    zone = "+00:00" if m.group(3) in ("Z", "z") else m.group(3)
    try:
        moment = _dt.datetime.fromisoformat(m.group(1).replace(" ", "T") + zone)
    except ValueError:
        return None
    fraction = int((m.group(2) or "").ljust(9, "0"))
    return int(moment.timestamp()) * 1_000_000_000 + fraction


def unix_seconds(value: str) -> float:
    """Seconds since the epoch, with the fraction; 0.0 for an empty or unreadable value
    (Docker's zero time reads as far in the past, which callers treat alike)."""
    nano = rfc3339_nano(value)
    return 0.0 if nano is None else nano / 1_000_000_000


def unix_time(value: str) -> int:
    """Whole seconds since the epoch, as list endpoints show `Created`; 0 if unreadable."""
    nano = rfc3339_nano(value)
    return 0 if nano is None else nano // 1_000_000_000
