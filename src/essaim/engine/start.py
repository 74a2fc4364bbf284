"""Starting a container: its rootfs mounted, its OCI config written, `create` then `start`
under its runtime with waiting attach clients handed over in between; undone on failure.
"""

from __future__ import annotations

import json

from essaim.engine.attachments import Attachments
from essaim.engine.container_events import ContainerEvents
from essaim.engine.index import ContainerIndex
from essaim.engine.networking import ContainerNetworking
from essaim.engine.removal import Removal
from essaim.engine.run_spec import run_spec
from essaim.engine.storage import ContainerStorage
from essaim.errors import EssaimError
from essaim.model.container import RUNNING, Container, ContainerState
from essaim.model.log_config import NONE as LOG_NONE
from essaim.model.rfc3339 import now_rfc3339
from essaim.runtime.base import RuntimeError_, Started
from essaim.runtime.host import HostFacts
from essaim.runtime.registry import Runtimes
from essaim.runtime.spec import build_oci_config


def start_error_message(exc: EssaimError) -> str:
    """What dockerd says of a start that failed: the runtime's refusals come wrapped."""
    if isinstance(exc, RuntimeError_):
        return (
            "failed to create task for container: failed to create shim task: "
            f"OCI runtime create failed: {exc.message}: unknown"
        )
    return exc.message


def exit_code_for_start_error(message: str) -> int:
    """What dockerd records for a process that could not start (the CLI maps these too)."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message:
        return 126
    return 128


class Starter:
    def __init__(
        self,
        *,
        index: ContainerIndex,
        storage: ContainerStorage,
        runtimes: Runtimes,
        attachments: Attachments,
        events: ContainerEvents,
        removal: Removal,
        host: HostFacts,
        cgroup_parent: str,
        networking: ContainerNetworking,
    ) -> None:
        self.index = index
        self.storage = storage
        self.runtimes = runtimes
        self.attachments = attachments
        self.events = events
        self.removal = removal
        self.host = host
        self.cgroup_parent = cgroup_parent
        self.networking = networking

    async def start(self, container: Container) -> Started:
        """Run the container (its lock held). On failure its state records the error,
        an `--rm` container is removed, and the exception is raised as dockerd words it."""
        cid = container.id
        files = self.storage.files(cid)
        tty, stdin = container.config.tty, container.config.open_stdin
        self.storage.new_run(cid)
        runtime = self.runtimes.get(container.runtime)
        try:
            rootfs = await self.storage.mount_rootfs(container)
            await self.networking.attach(container)
            spec = run_spec(
                container, rootfs, containers_root=self.storage.root,
                cgroup_parent=self.cgroup_parent, lookup=self.index.get,
                mount_sources=self.storage.mounts.sources(cid),
                network_namespace=self.networking.netns_path(container),
                link_env=self.networking.link_env(container),
            )  # fmt: skip
            files.config.write_text(json.dumps(build_oci_config(spec, self.host)))
            started = await runtime.create(
                cid, files, tty=tty, stdin=stdin,
                leave_stdin_open=not (container.config.stdin_once and not tty),
                keep_log=container.host_config.log_type != LOG_NONE,
            )  # fmt: skip
        except EssaimError as exc:
            await self._failed(container, exc)
            raise
        self.attachments.connect_waiting(cid, runtime)
        try:
            await runtime.start(cid)
        except RuntimeError_ as exc:
            await runtime.delete(cid)
            await self._failed(container, exc)
            raise
        container.state = ContainerState(
            status=RUNNING,
            pid=started.pid,
            conmon_pid=started.conmon_pid,
            started_at=now_rfc3339(),
            restart_count=container.state.restart_count,
        )
        await self.index.save(container)
        self.events.publish(container, "start")
        return started

    async def _failed(self, container: Container, exc: EssaimError) -> None:
        message = start_error_message(exc)
        exc.message = message
        exc.args = (message,)
        self.attachments.end_waiting(container.id)
        self.runtimes.get(container.runtime).forget_sockets(container.id)
        (await self.networking.release(container))()
        await self.storage.unmount_rootfs(container.id)
        container.state.error = message
        container.state.exit_code = exit_code_for_start_error(message)
        await self.index.save(container)
        if container.host_config.auto_remove:
            await self.removal.remove(container)
