"""Retries of a layer download as dockerd makes them: up to 5 attempts, the nth failure
followed by n*5 seconds counted down in `Retrying in N seconds` messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5  # dockerd's --max-download-attempts, first attempt included
    step: int = 5  # after the nth failure, wait n*step seconds
    second: float = 1.0  # how long one second of the countdown lasts (short in tests)

    def delay(self, failures: int) -> int:
        """The countdown, in seconds, after `failures` failed attempts."""
        return failures * self.step


def countdown_text(seconds: int) -> str:
    return f"Retrying in {seconds} second{'s' if seconds != 1 else ''}"


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    retryable: Callable[[Exception], bool],
    on_wait: Callable[[int], None],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`attempt()` until it succeeds, fails in a way no retry cures, or has failed
    `policy.attempts` times (the last failure is raised). `on_wait(n)` is told each
    second of the countdown in between. Cancellation is never retried."""
    failures = 0
    while True:
        try:
            return await attempt()
        except Exception as exc:
            failures += 1
            if not retryable(exc) or failures >= policy.attempts:
                raise
            log.info("download failed, retrying (%d/%d): %s", failures, policy.attempts, exc)
        for remaining in range(policy.delay(failures), 0, -1):
            on_wait(remaining)
            await sleep(policy.second)
