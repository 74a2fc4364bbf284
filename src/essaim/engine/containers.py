"""The container service the API calls: lookup, create, start, stop, kill, restart,
resize, wait, remove and attach, each checked here and carried out by the engine's parts.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import signal as signals
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from essaim.engine.attach import AttachOptions, AttachSession, ClientStream
from essaim.engine.attachments import Attachments
from essaim.engine.container_events import ContainerEvents
from essaim.engine.disk_usage import writable_layer_size
from essaim.engine.exec import ExecService
from essaim.engine.health import HealthChecker
from essaim.engine.identity_settings import settle_identity
from essaim.engine.image_defaults import apply_image_config
from essaim.engine.index import ContainerIndex
from essaim.engine.monitor import ExitMonitor
from essaim.engine.naming import new_id
from essaim.engine.network_mode import CONTAINER, HOST, parse_network_mode
from essaim.engine.networking import ContainerNetworking
from essaim.engine.pause import signal_thaws, thaw_after_signal
from essaim.engine.removal import Removal
from essaim.engine.resource_settings import settle_resources
from essaim.engine.restart_policy import validate_restart_policy
from essaim.engine.start import Starter
from essaim.engine.stopping import (
    STOPPING_SIGNALS,
    parse_signal,
    signal_until_exit,
    stop_grace,
    stop_signal,
)  # fmt: skip
from essaim.engine.storage import ContainerStorage
from essaim.engine.tasks import BackgroundTasks
from essaim.engine.waiters import ExitStatus, ExitWaiters, parse_wait_condition
from essaim.errors import Conflict, EssaimError, NotModified
from essaim.image.service import ImageService
from essaim.model.container import (
    EXITED,
    PAUSED,
    REMOVING,
    RESTARTING,
    RUNNING,
    Container,
    ContainerConfig,
    HostConfig,
)  # fmt: skip
from essaim.model.network import EndpointConfig
from essaim.model.rfc3339 import now_rfc3339
from essaim.network.sandbox import Sandboxes
from essaim.network.service import NetworkService
from essaim.runtime.base import ContainerFiles
from essaim.runtime.conmon import send_signal
from essaim.runtime.host import HostFacts
from essaim.runtime.registry import Runtimes
from essaim.store import Store
from essaim.store.events import EventBus
from essaim.volume.container_mounts import ContainerMounts
from essaim.volume.service import VolumeService


class ContainerService:
    def __init__(
        self,
        *,
        data_root: Path,
        store: Store,
        events: EventBus,
        images: ImageService,
        runtimes: Runtimes,
        cgroup_parent: str,
        volumes: VolumeService,
        exec_root: Path,
        networks: NetworkService,
        sandboxes: Sandboxes,
    ) -> None:
        self.images = images
        self.mounts = ContainerMounts(volumes, exec_root / "subpaths")
        self.runtimes = runtimes
        self.index = ContainerIndex(store)
        self.events = ContainerEvents(events)
        self.storage = ContainerStorage(
            data_root / "containers", images=images, runtimes=runtimes, index=self.index,
            mounts=self.mounts,
        )  # fmt: skip
        self.waiters = ExitWaiters()
        self.tasks = BackgroundTasks()
        self.attachments = Attachments(self.tasks)
        self.removal = Removal(
            index=self.index, storage=self.storage, events=self.events, waiters=self.waiters,
            mounts=self.mounts,
        )  # fmt: skip
        host = HostFacts.read()
        self.cgroup_version = host.cgroup_version
        self.networking = ContainerNetworking(
            networks, sandboxes, containers_root=self.storage.root, lookup=self.get
        )
        starter = Starter(
            index=self.index, storage=self.storage, runtimes=runtimes,
            attachments=self.attachments, events=self.events, removal=self.removal,
            host=host, cgroup_parent=cgroup_parent, networking=self.networking,
        )  # fmt: skip
        self.execs = ExecService(
            index=self.index, storage=self.storage, runtimes=runtimes, events=self.events,
            tasks=self.tasks, host=host,
        )  # fmt: skip
        self.health = HealthChecker(
            index=self.index, bus=events, events=self.events, prober=self.execs
        )
        self.monitor = ExitMonitor(
            index=self.index, storage=self.storage, events=self.events, waiters=self.waiters,
            tasks=self.tasks, starter=starter, removal=self.removal,
            networking=self.networking,
        )  # fmt: skip

    async def load(self) -> None:
        """Read every record and find running containers again (they outlive us)."""
        await self.index.load()
        self.mounts.adopt(self.index.all())
        await self.storage.load()
        for container in self.index.all():
            await self.monitor.readopt(container)
        await self.networking.sandboxes.restored()
        self.tasks.spawn(self.health.run(), "health-checks")

    async def close(self) -> None:
        """Stop watching; containers keep running under their conmon."""
        await self.tasks.close()
        await self.health.close()
        await self.storage.close()

    def files(self, cid: str) -> ContainerFiles:
        return self.storage.files(cid)

    def get(self, ref: str) -> Container:
        """By full id, name (with or without /), or unique id prefix, as dockerd."""
        return self.index.get(ref)

    def list(self) -> list[Container]:
        return self.index.newest_first()

    def uses_image(self, image_id: str) -> builtins.list[tuple[str, bool]]:
        return [(c.id, c.state.running) for c in self.index.all() if c.image_id == image_id]

    async def sizes(self, container: Container) -> tuple[int, int]:
        """(`SizeRw`, `SizeRootFs`): its writable layer, and that plus its image."""
        size_rw = await asyncio.get_running_loop().run_in_executor(
            None, writable_layer_size, self.files(container.id).bundle
        )
        image = self.images.get_cached(container.image_id)
        return size_rw, size_rw + (image.size if image is not None else 0)

    def image_shown(self, container: Container) -> str:
        """The image as `docker ps` shows it: the name the container was created with
        while it still names the same image, else the image id (moby's refreshImage)."""
        typed = container.config.image
        if typed == container.image_id:
            return typed
        image = self.images.get_cached(typed)
        return typed if image is not None and image.id == container.image_id else container.image_id

    async def create(
        self,
        name: str | None,
        config: ContainerConfig,
        host_config: HostConfig,
        endpoints: Mapping[str, EndpointConfig] | None = None,
    ) -> Container:
        runtime_name = self.runtimes.get(host_config.runtime).runtime_name
        requested = self.index.check_name(name) if name else None
        validate_restart_policy(host_config.restart_policy, auto_remove=host_config.auto_remove)
        settle_resources(host_config)
        settle_identity(config, host_config, cgroup_version=self.cgroup_version, lookup=self.get)
        image = await self.images.get(config.image)
        chain_ids, layer_digests = self.images.rootfs_layers(image)
        argv = apply_image_config(config, image.config)
        networks = self.networking.endpoints_at_create(host_config, endpoints or {})
        cid = new_id()
        network = parse_network_mode(host_config.network_mode)
        if network.kind == CONTAINER:
            # Stored by id, as dockerd does: a rename of the other one changes nothing.
            host_config.network_mode = f"container:{self.index.get(network.container).id}"
        host_network = network.kind == HOST
        config.hostname = config.hostname or (socket.gethostname() if host_network else cid[:12])
        container = Container(
            id=cid,
            name=self.index.reserve_name(requested, cid),
            created=now_rfc3339(),
            image_id=image.id,
            config=config,
            host_config=host_config,
            path=argv[0],
            args=argv[1:],
            runtime=runtime_name,
            chain_ids=chain_ids,
            layer_digests=layer_digests,
            networks=networks,
        )
        # Held before anything awaits: an `rmi -f` from now on leaves the layers be.
        self.storage.hold_new_layers(cid, chain_ids, layer_digests)
        made_volumes: builtins.list[str] = []
        try:
            made_volumes = await self.mounts.create(container, image.config.volumes, self.get)
            await self.storage.make_dir(
                cid, config.hostname, config.domainname, host_network=host_network
            )
            await self.storage.seed_volumes(container)
            await self.index.save(container)
        except BaseException:
            self.index.forget(container)
            await self.mounts.release(container, remove=made_volumes)
            await self.storage.undo_create(cid)
            raise
        self.events.publish(container, "create")
        return container

    async def start(self, ref: str) -> None:
        container = self.get(ref)
        async with self.index.lock(container.id):
            container = self.get(container.id)
            if container.state.status == PAUSED:
                raise Conflict("cannot start a paused container, try unpause instead")
            if container.state.status in (RUNNING, PAUSED, RESTARTING):
                raise NotModified("container already started")
            if container.state.status == REMOVING:
                raise Conflict(
                    f"container {container.id} is marked for removal and cannot be started"
                )
            await self.monitor.run(container)

    async def kill(self, ref: str, signal: str | None) -> None:
        container = self.get(ref)
        sig = parse_signal(signal)
        if container.state.status == RESTARTING:
            # As dockerd: no process to signal, and the pending restart is called off.
            await self._cancel_restart(container)
            return
        if not container.state.running or container.state.pid <= 0:
            raise Conflict(f"Cannot kill container: {ref}: Container {container.id} is not running")
        if sig in STOPPING_SIGNALS:
            container.state.stopped_by_user = True
        send_signal(container.state.pid, sig)
        if container.state.status == PAUSED and signal_thaws(container, sig):
            await thaw_after_signal(container, self.runtimes.get(container.runtime), self.index)
        self.events.publish(container, "kill", signal=str(sig))

    async def stop(self, ref: str, grace: int | None, signal: str | None) -> None:
        container = self.get(ref)
        if container.state.status == RESTARTING:
            await self._cancel_restart(container)
            return
        if not container.state.running:
            raise NotModified("container already stopped")
        sig = stop_signal(signal, container)
        await self._stop_running(container, sig, stop_grace(grace, container))
        self.events.publish(container, "stop")

    async def _cancel_restart(self, container: Container) -> None:
        """A restarting container has no process: stopping it calls its restart off."""
        container.state.status = EXITED
        container.state.stopped_by_user = True
        await self.index.save(container)

    async def _stop_running(self, container: Container, sig: int, grace: int) -> None:
        container.state.stopped_by_user = True
        exited = self.wait_for_next_exit(container.id)
        if container.state.status == PAUSED:
            # A frozen process does not act on a signal until it is thawed.
            with contextlib.suppress(EssaimError):
                await self.runtimes.get(container.runtime).resume(container.id)

        def signalled(sent: int) -> None:
            self.events.publish(container, "kill", signal=str(sent))

        await signal_until_exit(container, exited, signal=sig, grace=grace, signalled=signalled)

    async def restart(self, ref: str, grace: int | None, signal: str | None) -> None:
        container = self.get(ref)
        if container.state.running:
            with contextlib.suppress(NotModified):
                await self.stop(ref, grace, signal)
        await self.start(container.id)
        container.state.stopped_by_user = False
        self.events.publish(container, "restart")

    async def resize(self, ref: str, height: int, width: int) -> None:
        container = self.get(ref)
        if not container.state.running:
            raise Conflict(f"Container {container.id} is not running")
        self.runtimes.get(container.runtime).resize(self.files(container.id), height, width)

    def wait_for_next_exit(self, cid: str) -> asyncio.Future[ExitStatus]:
        return self.waiters.next_exit(cid)

    def wait(self, ref: str, condition: str) -> asyncio.Future[ExitStatus]:
        """Registers at once (before the client starts the container); resolves later."""
        condition = parse_wait_condition(condition)
        return self.waiters.wait(self.get(ref), condition)

    async def remove(self, ref: str, *, force: bool, volumes: bool = False) -> None:
        """`volumes` removes its anonymous volumes too (`rm -v`)."""
        container = self.get(ref)
        if container.state.status == RESTARTING:
            if not force:
                raise Conflict(
                    f'cannot remove container "/{container.name}": container is restarting: '
                    "stop the container before removing or force remove"
                )
            await self._cancel_restart(container)
        if container.state.running:
            if not force and container.state.status == PAUSED:
                raise Conflict(
                    f'cannot remove container "/{container.name}": '
                    "container is paused and must be unpaused first"
                )
            if not force:
                raise Conflict(
                    f'cannot remove container "/{container.name}": container is running: '
                    "stop the container before removing or force remove"
                )
            await self._stop_running(container, signals.SIGKILL, -1)
        async with self.index.lock(container.id):
            if container.id in self.index:
                await self.removal.remove(container, volumes=volumes)

    def network_id(self, name: str) -> str:
        """The id of the network a container names ("" once that network is gone)."""
        network = self.networking.networks.find(name)
        return network.id if network is not None else ""

    async def connect_network(self, ref: str, network: str, config: EndpointConfig) -> None:
        container = self.get(ref)
        async with self.index.lock(container.id):
            container = self.get(container.id)
            await self.networking.connect(container, network, config)
            await self.index.save(container)

    async def disconnect_network(self, ref: str, network: str, *, force: bool) -> None:
        container = self.get(ref)
        async with self.index.lock(container.id):
            container = self.get(container.id)
            await self.networking.disconnect(container, network, force=force)
            await self.index.save(container)

    def prepare_attach(
        self, ref: str, options: AttachOptions
    ) -> Callable[[ClientStream], Awaitable[None]]:
        """Checks now (a 404 must come before the 101), relays once the client is ours."""
        container = self.get(ref)
        cid = container.id
        if not container.config.open_stdin:
            options.stdin = False
        options.tty = container.config.tty

        async def run(client: ClientStream) -> None:
            session = AttachSession(client, options)
            current = self.index.find(cid)
            if current is None:
                return
            self.events.publish(current, "attach")
            if current.state.status in (RUNNING, PAUSED):
                self.attachments.connect(cid, self.runtimes.get(current.runtime), session)
            else:
                self.attachments.wait_for_start(cid, session)
            await session.done.wait()

        return run
