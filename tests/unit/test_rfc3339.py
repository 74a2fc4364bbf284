"""Image times as Go writes and reads them: nanoseconds kept, trailing zeros dropped,
and anything unreadable read as no time at all."""

from __future__ import annotations

import re

import pytest

from essaim.model.rfc3339 import now_rfc3339, rfc3339_nano

EPOCH_2024 = 1_704_067_200 * 1_000_000_000  # 2024-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("2024-01-01T00:00:00Z", EPOCH_2024),
        ("2024-01-01T00:00:00.5Z", EPOCH_2024 + 500_000_000),
        ("2024-01-01T00:00:00.123456789Z", EPOCH_2024 + 123_456_789),
        ("2024-01-01T00:00:00.1234567891Z", EPOCH_2024 + 123_456_789),
        ("2024-01-01t00:00:00z", EPOCH_2024),
        ("2024-01-01 01:00:00+01:00", EPOCH_2024),
    ],
)
def test_rfc3339_nano_reads_go_times(text: str, nanoseconds: int) -> None:
    assert rfc3339_nano(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "yesterday", "2024-01-01", "2024-13-01T00:00:00Z"])
def test_rfc3339_nano_unreadable_is_none(text: str) -> None:
    assert rfc3339_nano(text) is None


def test_now_is_utc_with_a_trimmed_fraction_and_reads_back() -> None:
    now = now_rfc3339()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z", now)
    assert rfc3339_nano(now) is not None
