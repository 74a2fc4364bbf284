"""Health checks: for each running container with a HEALTHCHECK, probes run as execs at
its intervals, their results folded into `State.Health`, `health_status` events on change.
Driven by the container events, so it follows every start and exit wherever they come from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

from essaim.engine.container_events import ContainerEvents
from essaim.engine.index import ContainerIndex
from essaim.errors import EssaimError
from essaim.model.container import Container
from essaim.model.health import (
    DEFAULT_TIMEOUT,
    MAX_OUTPUT,
    HealthLogEntry,
    HealthState,
    interval_ns,
    probe_command,
    record_probe,
)  # fmt: skip
from essaim.model.rfc3339 import now_rfc3339, unix_seconds
from essaim.store.events import EventBus

log = logging.getLogger(__name__)

# Container events that end a run (and with it the probing).
_ENDS = ("die", "destroy", "pause")


class Prober(Protocol):
    async def probe(self, cid: str, argv: list[str], limit: float) -> tuple[int, str]:
        """Run `argv` in the container; its exit code and (at most 4 KiB of) output."""
        ...


class HealthChecker:
    def __init__(
        self,
        *,
        index: ContainerIndex,
        bus: EventBus,
        events: ContainerEvents,
        prober: Prober,
    ) -> None:
        self.index = index
        self.bus = bus
        self.events = events
        self.prober = prober
        self._probing: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        """Follow the containers' starts and ends until cancelled."""
        subscription = self.bus.subscribe()
        for container in self.index.all():
            if container.state.running:
                self._begin(container, fresh=False)
        try:
            async for event in subscription:
                if event.type != "container":
                    continue
                if event.action in ("start", "unpause"):
                    started = self.index.find(event.actor_id)
                    if started is not None:
                        self._begin(started, fresh=event.action == "start")
                elif event.action in _ENDS:
                    self._end(event.actor_id)
        finally:
            await subscription.aclose()  # type: ignore[attr-defined]

    async def close(self) -> None:
        tasks = list(self._probing.values())
        self._probing.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _begin(self, container: Container, *, fresh: bool) -> None:
        if probe_command(container.config.healthcheck) is None or container.id in self._probing:
            return
        if fresh or container.state.health is None:
            container.state.health = HealthState()
        task = asyncio.ensure_future(self._probe_loop(container.id))
        task.set_name(f"health-{container.id}")
        self._probing[container.id] = task

    def _end(self, cid: str) -> None:
        task = self._probing.pop(cid, None)
        if task is not None:
            task.cancel()

    async def _probe_loop(self, cid: str) -> None:
        while True:
            container = self.index.find(cid)
            if container is None or not container.state.running:
                return
            config, health = container.config.healthcheck, container.state.health
            argv = probe_command(config)
            if config is None or health is None or argv is None:
                return
            await asyncio.sleep(
                interval_ns(config, health, in_start_period=self._in_start_period(container)) / 1e9
            )
            await self._probe_once(container, argv)

    async def _probe_once(self, container: Container, argv: list[str]) -> None:
        config, health = container.config.healthcheck, container.state.health
        assert config is not None and health is not None
        timeout = (config.timeout or DEFAULT_TIMEOUT) / 1e9
        start = now_rfc3339()
        try:
            code, output = await self.prober.probe(container.id, argv, timeout)
        except EssaimError as exc:
            if not container.state.running:
                return  # it stopped under the probe: no result to record
            code, output = -1, exc.message
        entry = HealthLogEntry(
            start=start, end=now_rfc3339(), exit_code=code, output=output[:MAX_OUTPUT]
        )
        changed = record_probe(
            health, entry, retries=config.retries,
            in_start_period=self._in_start_period(container),
        )  # fmt: skip
        if changed:
            self.events.publish(container, f"health_status: {health.status}")
            with contextlib.suppress(EssaimError):
                await self.index.save(container)

    @staticmethod
    def _in_start_period(container: Container) -> bool:
        config = container.config.healthcheck
        if config is None or not config.start_period:
            return False
        running_for = time.time() - unix_seconds(container.state.started_at)
        return running_for * 1e9 < config.start_period
