"""Upload purging, as the reference registry's `storage.maintenance.uploadpurging`:
upload sessions begun longer ago than an age are removed at start-up, then every interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from essaim.image.registry.uploads import UploadSessions

log = logging.getLogger(__name__)

# docker-registry's defaults: enabled, age 168h, interval 24h.
DEFAULT_AGE = 168 * 3600.0
DEFAULT_INTERVAL = 24 * 3600.0


@dataclass(frozen=True)
class UploadPurging:
    age: float = DEFAULT_AGE  # seconds; 0 disables purging
    interval: float = DEFAULT_INTERVAL  # seconds; 0 disables purging

    @property
    def enabled(self) -> bool:
        return self.age > 0 and self.interval > 0


async def purge_once(
    sessions: UploadSessions, purging: UploadPurging, clock: Callable[[], float] = time.time
) -> int:
    """One pass; a failure is logged and the next pass tries again."""
    try:
        removed = await sessions.purge(clock() - purging.age)
    except OSError as exc:
        log.warning("upload purge failed: %s", exc)
        return 0
    for name, upload_id in removed:
        log.info("purged upload %s of %s, begun more than %.0fs ago", upload_id, name, purging.age)
    return len(removed)


async def purge_periodically(
    sessions: UploadSessions, purging: UploadPurging, clock: Callable[[], float] = time.time
) -> None:
    """Every `interval` after the start-up pass, until cancelled."""
    while True:
        await asyncio.sleep(purging.interval)
        await purge_once(sessions, purging, clock)
