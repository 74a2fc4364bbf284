"""essaimd: the engine daemon. Parses dockerd-compatible flags, wires the services
together, serves the Engine API, and shuts down cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import signal
import ssl
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from essaim.api.app import EngineApplication
from essaim.api.commit import CommitAPI
from essaim.api.container_files import ContainerFilesAPI
from essaim.api.container_logs import ContainerLogsAPI
from essaim.api.container_ops import ContainerOpsAPI
from essaim.api.container_stats import ContainerStatsAPI
from essaim.api.container_update import ContainerUpdateAPI
from essaim.api.containers import ContainersAPI
from essaim.api.disk_usage import DiskUsageAPI
from essaim.api.distribution import DistributionAPI
from essaim.api.events import EventsAPI
from essaim.api.exec import ExecAPI
from essaim.api.image_archives import ImageArchivesAPI
from essaim.api.images import ImagesAPI
from essaim.api.networks import NetworksAPI
from essaim.api.router import Router
from essaim.api.server import Server, SocketInUse
from essaim.api.system import DaemonFacts, SystemAPI
from essaim.api.volumes import VolumesAPI
from essaim.engine.container_filesystem import ContainerFilesystem
from essaim.engine.containers import ContainerService
from essaim.engine.log_files import LogFiles
from essaim.engine.log_rotation import LogRotator
from essaim.engine.resource_settings import host_cpus
from essaim.engine.system import backing_filesystem
from essaim.engine.update import ContainerUpdater
from essaim.errors import EssaimError, InvalidParameter
from essaim.image.distribution.hosts import DEFAULT_CERTS_DIR, RegistryHosts
from essaim.image.distribution.retry import RetryPolicy
from essaim.image.distribution.service import DistributionService
from essaim.image.service import ImageService
from essaim.network.dns.names import NameTable
from essaim.network.dns.server import EmbeddedDns
from essaim.network.firewall.nft import Firewall
from essaim.network.firewall.ports import HostPorts
from essaim.network.ipam import DEFAULT_POOLS, parse_address_pool
from essaim.network.netns import NamespaceFiles
from essaim.network.sandbox import Sandboxes
from essaim.network.service import NetworkService, NetworkSettings
from essaim.runtime.registry import Runtimes
from essaim.store import SqliteStore
from essaim.store.events import EventBus
from essaim.store.lock import DataRootBusy, DataRootLock
from essaim.volume.service import VolumeService

log = logging.getLogger("essaimd")

DEFAULT_HOST = "unix:///run/essaim/essaim.sock"


@dataclass
class DaemonConfig:
    hosts: list[str] = field(default_factory=lambda: [DEFAULT_HOST])
    data_root: Path = Path("/var/lib/essaim")
    exec_root: Path = Path("/run/essaim")
    pidfile: Path | None = None
    log_level: str = "info"
    cgroup_parent: str = "essaim"
    default_runtime: str = "runc"
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    insecure_tcp: bool = False
    insecure_registries: list[str] = field(default_factory=list)
    registry_mirrors: list[str] = field(default_factory=list)
    certs_dir: Path = DEFAULT_CERTS_DIR
    max_download_attempts: int = 5
    download_retry_second: float = 1.0
    network: NetworkSettings = field(default_factory=NetworkSettings)
    firewall_table: str = "essaim"


def parse_args(argv: list[str] | None = None) -> DaemonConfig:
    p = argparse.ArgumentParser(prog="essaimd", description="the essaim engine daemon")
    p.add_argument(
        "-H",
        "--host",
        action="append",
        dest="hosts",
        metavar="URL",
        help=f"socket to listen on (repeatable; default {DEFAULT_HOST})",
    )
    p.add_argument("--data-root", default="/var/lib/essaim", help="root of persistent state")
    p.add_argument("--exec-root", default="/run/essaim", help="root of runtime state")
    p.add_argument("-p", "--pidfile", default=None, help="write the daemon's pid here")
    p.add_argument(
        "-l", "--log-level", default="info", choices=["debug", "info", "warn", "error", "fatal"]
    )
    p.add_argument(
        "--cgroup-parent",
        default=None,
        help="parent cgroup of containers (default: essaim, or derived from the data root)",
    )
    p.add_argument("--default-runtime", default="runc", help="OCI runtime (runc or crun)")
    p.add_argument("--tlscacert", default=None)
    p.add_argument("--tlscert", default=None)
    p.add_argument("--tlskey", default=None)
    p.add_argument("--tlsverify", action="store_true", help="ignored: always on for tcp")
    p.add_argument(
        "--insecure-tcp",
        action="store_true",
        help="allow tcp:// without TLS (never on a shared network)",
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        dest="insecure_registries",
        default=[],
        metavar="HOST[:PORT]|CIDR",
        help="registry reached without verified TLS (repeatable; loopback always is)",
    )
    p.add_argument(
        "--registry-mirror",
        action="append",
        dest="registry_mirrors",
        default=[],
        metavar="URL",
        help="a mirror of the default registry, tried first for its images (repeatable)",
    )
    p.add_argument(
        "--certs-dir",
        default=str(DEFAULT_CERTS_DIR),
        help="registry certificates, <dir>/<host:port>/ca.crt (dockerd: /etc/docker/certs.d)",
    )
    p.add_argument(
        "--max-download-attempts",
        type=int,
        default=5,
        help="attempts at each layer of a pull, the first included (default 5)",
    )
    # How long a second of the `Retrying in N seconds` countdown lasts: tests shorten it.
    p.add_argument("--download-retry-second", type=float, default=1.0, help=argparse.SUPPRESS)
    _network_flags(p)
    ns = p.parse_args(argv)
    if ns.max_download_attempts <= 0:
        p.error(f"invalid max download attempts: {ns.max_download_attempts}")
    data_root = Path(ns.data_root).resolve()
    # One cgroup subtree, bridge and nftables table per daemon: a second instance (its own
    # data root) must not share the first's.
    own = data_root == Path("/var/lib/essaim")
    suffix = hashlib.sha256(str(data_root).encode()).hexdigest()[:12]
    cgroup_parent = ns.cgroup_parent
    if cgroup_parent is None:
        cgroup_parent = "essaim" if own else f"essaim-{suffix}"
    try:
        network = _network_settings(ns, default_bridge="essaim0" if own else f"es{suffix[:10]}")
    except InvalidParameter as exc:
        p.error(exc.message)
    return DaemonConfig(
        hosts=ns.hosts or [DEFAULT_HOST],
        data_root=data_root,
        exec_root=Path(ns.exec_root).resolve(),
        pidfile=Path(ns.pidfile) if ns.pidfile else None,
        log_level=ns.log_level,
        cgroup_parent=cgroup_parent.strip("/"),
        default_runtime=ns.default_runtime,
        tls_ca=ns.tlscacert,
        tls_cert=ns.tlscert,
        tls_key=ns.tlskey,
        insecure_tcp=ns.insecure_tcp,
        insecure_registries=list(ns.insecure_registries),
        registry_mirrors=list(ns.registry_mirrors),
        certs_dir=Path(ns.certs_dir),
        max_download_attempts=ns.max_download_attempts,
        download_retry_second=ns.download_retry_second,
        network=network,
        firewall_table="essaim" if own else f"essaim-{suffix}",
    )


def _network_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-b", "--bridge", default=None, help="the default bridge's interface name")
    p.add_argument(
        "--bip", "--bridge-ip", dest="bip", default=None, metavar="CIDR",
        help="the default bridge's address and subnet, e.g. 10.20.0.1/24",
    )  # fmt: skip
    p.add_argument(
        "--default-address-pool", action="append", dest="address_pools", default=[],
        metavar="base=CIDR,size=N", help="where networks' subnets come from (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--icc", default="true", choices=["true", "false"],
        help="containers on the default bridge may talk to each other",
    )  # fmt: skip
    p.add_argument(
        "--ip-masq", default="true", choices=["true", "false"],
        help="masquerade containers' outbound traffic on the default bridge",
    )  # fmt: skip
    p.add_argument("--mtu", type=int, default=1500, help="the default bridge's MTU")
    p.add_argument(
        "--dns", action="append", default=[], metavar="IP",
        help="nameservers for containers (and the embedded DNS's upstreams)",
    )  # fmt: skip


def _network_settings(ns: argparse.Namespace, *, default_bridge: str) -> NetworkSettings:
    pools = [parse_address_pool(text) for text in ns.address_pools] or list(DEFAULT_POOLS)
    bip = None
    if ns.bip:
        try:
            bip = ipaddress.IPv4Interface(ns.bip)
        except ValueError:
            raise InvalidParameter(f"invalid --bip: {ns.bip}") from None
    for server in ns.dns:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise InvalidParameter(f"invalid --dns: {server}") from None
    bridge = ns.bridge or default_bridge
    if len(bridge) > 15:
        raise InvalidParameter(f"bridge name {bridge} is too long (15 characters at most)")
    return NetworkSettings(
        bridge_name=bridge, bridge_ip=bip, address_pools=pools, icc=ns.icc == "true",
        ip_masquerade=ns.ip_masq == "true", mtu=ns.mtu, dns=list(ns.dns),
    )  # fmt: skip


def _tls_context(config: DaemonConfig) -> ssl.SSLContext | None:
    if not (config.tls_cert and config.tls_key):
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(config.tls_cert, config.tls_key)
    if config.tls_ca:
        ctx.load_verify_locations(config.tls_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _daemon_id(data_root: Path) -> str:
    path = data_root / "engine-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        import uuid

        value = str(uuid.uuid4())
        path.write_text(value + "\n")
        return value


def _pid_alive(pid: int) -> bool:
    """Running, not a zombie: a killed daemon whose parent never reaps it (an init that
    does not, on some machines) must not hold the pidfile forever."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _write_pidfile(path: Path) -> None:
    """As dockerd: refuse a pidfile naming another live process, replace a stale one."""
    try:
        old = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        old = 0
    if old > 0 and old != os.getpid() and _pid_alive(old):
        raise SystemExit(f"essaimd: pid file found, ensure essaimd is not running or delete {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}\n")


def _remove_pidfile(path: Path) -> None:
    """Only our own: a pidfile another daemon has since written stays."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        if int(path.read_text().split()[0]) == os.getpid():
            path.unlink()


class Daemon:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        config = self.config
        config.data_root.mkdir(parents=True, exist_ok=True, mode=0o711)
        config.exec_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = DataRootLock(config.data_root)
        try:
            lock.acquire()
        except DataRootBusy as exc:
            raise SystemExit(f"essaimd: {exc}") from None
        try:
            await self._run_locked()
        finally:
            lock.release()

    async def _run_locked(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        # From here on SIGTERM means a clean stop, even while still starting up.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        # Undone in reverse: server, containers' monitors, store, executor, pidfile.
        async with contextlib.AsyncExitStack() as stack:
            if config.pidfile:
                _write_pidfile(config.pidfile)
                stack.callback(_remove_pidfile, config.pidfile)
            executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="essaim-io")
            stack.callback(executor.shutdown, wait=False)
            loop.set_default_executor(executor)
            store = SqliteStore(config.data_root / "state.db")
            stack.push_async_callback(store.close)
            events = EventBus()
            images = ImageService(config.data_root, store, events, executor)
            await images.load()
            try:
                registries = RegistryHosts(
                    config.insecure_registries, config.certs_dir, config.registry_mirrors
                )
            except InvalidParameter as exc:
                raise SystemExit(f"essaimd: {exc.message}") from None
            retry = RetryPolicy(
                attempts=config.max_download_attempts, second=config.download_retry_second
            )
            distribution = DistributionService(images, store, events, registries, retry)
            volumes = VolumeService(config.data_root, store, events)
            await volumes.load()
            try:
                runtimes = Runtimes.discover(
                    default=config.default_runtime,
                    state_root=config.exec_root / "runtimes",
                    socket_dir=config.exec_root / "s",
                )
            except ValueError as exc:
                raise SystemExit(f"essaimd: {exc}") from None
            networks = NetworkService(store, events, config.network)
            try:
                await networks.load()
            except EssaimError as exc:
                raise SystemExit(f"essaimd: networks: {exc.message}") from None
            namespaces = NamespaceFiles(config.exec_root / "netns")
            await asyncio.to_thread(namespaces.prepare)
            names = NameTable()
            sandboxes = Sandboxes(
                networks=networks, namespaces=namespaces,
                firewall=Firewall(config.firewall_table), dns=EmbeddedDns(names),
                names=names, ports=HostPorts(), events=events,
            )  # fmt: skip
            stack.push_async_callback(sandboxes.close)
            containers = ContainerService(
                data_root=config.data_root,
                store=store,
                events=events,
                images=images,
                runtimes=runtimes,
                cgroup_parent=config.cgroup_parent,
                volumes=volumes,
                exec_root=config.exec_root,
                networks=networks,
                sandboxes=sandboxes,
            )
            stack.push_async_callback(containers.close)
            await containers.load()
            log_files = LogFiles(lambda cid: containers.files(cid).log)
            rotator = LogRotator(
                index=containers.index, files=containers.files, runtimes=runtimes, logs=log_files
            )
            rotator.start()
            stack.push_async_callback(rotator.close)
            facts = DaemonFacts(
                daemon_id=_daemon_id(config.data_root),
                data_root=config.data_root,
                exec_root=config.exec_root,
                default_runtime=runtimes.default,
                runtimes=runtimes.paths(),
                debug=config.log_level == "debug",
                backing_filesystem=backing_filesystem(config.data_root),
                registry_config=registries.info_wire(),
            )
            router = Router()
            SystemAPI(facts, containers, images, events).register(router)
            EventsAPI(events).register(router)
            ContainersAPI(containers).register(router)
            ContainerLogsAPI(containers, log_files).register(router)
            files = ContainerFilesystem(
                index=containers.index, storage=containers.storage,
                snapshots=images.snapshots, events=containers.events,
            )  # fmt: skip
            stack.callback(files.close)
            ContainerFilesAPI(files).register(router)
            ContainerUpdateAPI(
                ContainerUpdater(
                    index=containers.index, runtimes=runtimes, events=containers.events,
                    ncpu=host_cpus(),
                )
            ).register(router)  # fmt: skip
            ContainerOpsAPI(containers).register(router)
            CommitAPI(containers).register(router)
            ContainerStatsAPI(containers).register(router)
            ExecAPI(containers.execs).register(router)
            DiskUsageAPI(containers, images, volumes).register(router)
            distribution_api = DistributionAPI(distribution)
            distribution_api.register(router)
            ImagesAPI(images, containers, distribution_api.pull).register(router)
            ImageArchivesAPI(images, containers).register(router)
            VolumesAPI(volumes).register(router)
            NetworksAPI(networks, sandboxes, containers).register(router)
            server = Server(EngineApplication(router))
            stack.push_async_callback(server.close)
            for host in config.hosts:
                await self._listen(server, host)
            log.info("essaimd listening on %s", ", ".join(config.hosts))
            await self.stopping.wait()
            log.info("shutting down")

    async def _listen(self, server: Server, host: str) -> None:
        if host.startswith("unix://"):
            try:
                await server.listen_unix(Path(host.removeprefix("unix://")))
            except SocketInUse as exc:
                raise SystemExit(f"essaimd: {exc}") from None
            return
        if host.startswith("tcp://"):
            address = host.removeprefix("tcp://")
            name, _, port = address.rpartition(":")
            tls = _tls_context(self.config)
            if tls is None and not self.config.insecure_tcp:
                raise SystemExit(
                    f"essaimd: refusing {host} without TLS (give --tlscert/--tlskey/--tlscacert,"
                    " or --insecure-tcp)"
                )
            await server.listen_tcp(name or "127.0.0.1", int(port or 2376), tls)
            return
        raise SystemExit(f"essaimd: unsupported host {host!r} (use unix:// or tcp://)")


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    level = {"warn": "WARNING", "fatal": "CRITICAL"}.get(config.log_level, config.log_level.upper())
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )  # fmt: skip
    # pyroute2 logs every netlink message at debug: too much even for --log-level debug.
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    if os.geteuid() != 0:
        raise SystemExit("essaimd: must run as root")
    asyncio.run(Daemon(config).run())


if __name__ == "__main__":
    main()
