"""Running containers until they exit: each watched through its conmon, its exit recorded
(waits, events, `--rm`), its restart policy applied, and taken up again after a restart.
"""

from __future__ import annotations

import asyncio
import logging

from essaim.engine.container_events import ContainerEvents
from essaim.engine.index import ContainerIndex
from essaim.engine.networking import ContainerNetworking
from essaim.engine.removal import Removal
from essaim.engine.restart_policy import next_restart_delay, should_restart
from essaim.engine.start import Starter
from essaim.engine.storage import ContainerStorage
from essaim.engine.tasks import BackgroundTasks
from essaim.engine.waiters import ExitWaiters, answer
from essaim.errors import EssaimError
from essaim.model.container import EXITED, PAUSED, REMOVING, RESTARTING, RUNNING, Container
from essaim.model.rfc3339 import now_rfc3339, unix_seconds
from essaim.runtime.conmon import conmon_alive, read_exit_code, wait_for_pid_exit

log = logging.getLogger(__name__)


class ExitMonitor:
    def __init__(
        self,
        *,
        index: ContainerIndex,
        storage: ContainerStorage,
        events: ContainerEvents,
        waiters: ExitWaiters,
        tasks: BackgroundTasks,
        starter: Starter,
        removal: Removal,
        networking: ContainerNetworking,
    ) -> None:
        self.index = index
        self.storage = storage
        self.events = events
        self.waiters = waiters
        self.tasks = tasks
        self.starter = starter
        self.removal = removal
        self.networking = networking
        # The delay before each container's last restart by its policy (dockerd keeps it
        # in memory too: a daemon start begins again at 100 ms).
        self._restart_delays: dict[str, float] = {}

    async def run(self, container: Container, *, by_policy: bool = False) -> None:
        """Start the container (its lock held) and watch it until it exits. A start by
        the user begins a new back-off and a new restart count, as dockerd's does."""
        if not by_policy:
            self._restart_delays.pop(container.id, None)
            container.state.restart_count = 0
        started = await self.starter.start(container)
        self._watch(container.id, started.conmon_pid)

    async def readopt(self, container: Container) -> None:
        """At start-up: watch a container that kept running while we were away, record
        the exit of one that did not, finish a removal a crash cut short."""
        state = container.state
        if state.status == REMOVING:
            await self.removal.finish(container)
            return
        if state.status == RESTARTING:
            # We went away during its back-off: it is due now.
            self.tasks.spawn(self._restart_later(container.id, 0.0), f"restart-{container.id}")
            return
        if state.status == EXITED:
            await self._restart_at_boot(container)
            return
        if state.status not in (RUNNING, PAUSED):
            return
        if conmon_alive(state.conmon_pid, container.id):
            log.info("re-adopted running container %s", container.id[:12])
            await self.networking.restore(container)
            self._watch(container.id, state.conmon_pid)
            return
        # It ended while we were away: conmon left its exit code on disk.
        code = read_exit_code(self.storage.files(container.id), container.id)
        await self._on_exit(container.id, 255 if code is None else code, at_boot=True)

    async def _restart_at_boot(self, container: Container) -> None:
        """A container that was down when we started (a host reboot, a stop before the
        last daemon stop) and whose policy says so starts again, at once, as dockerd's."""
        if not should_restart(container.host_config.restart_policy, container.state, at_boot=True):
            return
        container.state.status = RESTARTING
        await self.index.save(container)
        self.tasks.spawn(self._restart_later(container.id, 0.0), f"restart-{container.id}")

    def _watch(self, cid: str, conmon_pid: int) -> None:
        self.tasks.spawn(self._monitor(cid, conmon_pid), f"monitor-{cid}")

    async def _monitor(self, cid: str, conmon_pid: int) -> None:
        await wait_for_pid_exit(conmon_pid)
        code = read_exit_code(self.storage.files(cid), cid)
        await self._on_exit(cid, 255 if code is None else code)

    async def _on_exit(self, cid: str, exit_code: int, *, at_boot: bool = False) -> None:
        container = self.index.find(cid)
        if container is None:
            return
        async with self.index.lock(cid):
            # Its addresses, ports and namespace go back before anything can start it
            # again, and before its state says it stopped: from then on to the waiters'
            # answer nothing may await, or a wait could see the exit and then be taken
            # for one registered before it.
            announce_disconnects = await self.networking.release(container)
            state = container.state
            # An auto-removed container goes straight to removal, and its record is not
            # rewritten first: a crash before the removal ends finds it RUNNING with its
            # conmon gone, reads the exit code from disk and removes it then.
            state.status = REMOVING if container.host_config.auto_remove else EXITED
            state.exit_code = exit_code
            state.pid = 0
            state.conmon_pid = 0
            state.finished_at = now_rfc3339()
            state.oom_killed = (self.storage.files(cid).bundle / "oom").exists()
            ran_for = unix_seconds(state.finished_at) - unix_seconds(state.started_at)
            policy = container.host_config.restart_policy
            restart = not container.host_config.auto_remove and should_restart(
                policy, state, at_boot=at_boot
            )
            delay = 0.0
            if not restart:
                self._restart_delays.pop(cid, None)
            else:
                # Counted and shown as "restarting" from the exit on, as dockerd does.
                state.status = RESTARTING
                if not at_boot:  # dockerd's restore restarts without counting
                    state.restart_count += 1
                    delay = next_restart_delay(self._restart_delays.get(cid, 0.0), ran_for)
                    self._restart_delays[cid] = delay
            # This exit answers the waits registered before it; a `next-exit` wait that
            # arrives while the record is saved already sees it stopped: it is for the next run.
            answered = self.waiters.take_next_exit(cid)
            if not container.host_config.auto_remove:
                await self.index.save(container)
            self.events.publish(
                container, "die", exitCode=str(exit_code), execDuration=str(max(0, int(ran_for)))
            )
            announce_disconnects()
            answer(answered, exit_code)
            if container.host_config.auto_remove:
                await self.removal.finish(container)
                return
            await self.storage.release_run(container)
            if restart:
                self.tasks.spawn(self._restart_later(cid, delay), f"restart-{cid}")

    async def _restart_later(self, cid: str, delay: float) -> None:
        """Start a restarting container after `delay`, unless a stop, kill, start or
        removal took it out of "restarting" meanwhile. Like dockerd, this emits `start`
        (the `die` came with the exit); `restart` is for `docker restart`."""
        await asyncio.sleep(delay)
        async with self.index.lock(cid):
            current = self.index.find(cid)
            if current is None or current.state.status != RESTARTING:
                if current is None:
                    self._restart_delays.pop(cid, None)
                return
            try:
                await self.run(current, by_policy=True)
            except EssaimError as exc:
                log.warning("restart of %s failed: %s", cid[:12], exc.message)
                current.state.status = EXITED
                await self.index.save(current)
