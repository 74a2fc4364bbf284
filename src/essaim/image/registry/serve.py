"""`essaim registry serve`: wires storage, uploads, authentication and the optional
token server into the project's HTTP server, on TCP with optional TLS, until a signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from essaim.api.server import Server
from essaim.image.registry.app import TOKEN_PATH, RegistryApplication
from essaim.image.registry.auth import Authenticator, BasicAuth, OpenAccess, TokenAuth
from essaim.image.registry.context import Registry
from essaim.image.registry.htpasswd import Htpasswd
from essaim.image.registry.purge import UploadPurging, purge_once, purge_periodically
from essaim.image.registry.storage import RegistryStorage
from essaim.image.registry.token_server import TokenServer
from essaim.image.registry.tokens import TokenIssuer, TokenVerifier, load_certificates
from essaim.image.registry.uploads import UploadSessions

log = logging.getLogger(__name__)
LOCK_NAME = "registry.lock"
WORKERS = 8


@dataclass
class RegistryConfig:
    root: Path
    host: str = "127.0.0.1"
    port: int = 5000
    tls_cert: Path | None = None
    tls_key: Path | None = None
    htpasswd: Path | None = None
    realm: str = "essaim registry"
    token_cert: Path | None = None
    token_key: Path | None = None
    token_realm: str | None = None
    token_service: str = "essaim-registry"
    token_issuer: str = "essaim-token-issuer"
    token_lifetime: int = 300
    upload_purging: UploadPurging = field(default_factory=UploadPurging)


class RootBusy(Exception):
    pass


@contextlib.contextmanager
def root_lock(root: Path, what: str) -> Iterator[None]:
    """One user of a registry root at a time: the server, or the garbage collector."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            raise RootBusy(f"registry root {root} is in use ({holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} pid {os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The engine API's server settings (daemon.py), without client certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def build_application(config: RegistryConfig, executor: ThreadPoolExecutor) -> RegistryApplication:
    storage = RegistryStorage(config.root)
    storage.prepare()
    registry = Registry(storage, UploadSessions(storage, executor), executor)
    htpasswd = Htpasswd(config.htpasswd) if config.htpasswd else None
    token_server = None
    authenticator: Authenticator
    if config.token_cert is not None:
        certificates = load_certificates(config.token_cert)
        if config.token_key is not None:
            issuer = TokenIssuer(
                config.token_key, certificates[0], config.token_issuer, config.token_lifetime
            )
            token_server = TokenServer(issuer, config.token_service, htpasswd, executor)
        realm = config.token_realm or _own_realm(config)
        verifier = TokenVerifier(certificates, config.token_issuer, config.token_service)
        authenticator = TokenAuth(verifier, realm)
    elif htpasswd is not None:
        authenticator = BasicAuth(htpasswd, config.realm, executor)
    else:
        authenticator = OpenAccess()
    return RegistryApplication(registry, authenticator, token_server)


def _own_realm(config: RegistryConfig) -> str:
    scheme = "https" if config.tls_cert else "http"
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"{scheme}://{host}:{config.port}{TOKEN_PATH}"


async def serve(config: RegistryConfig, ready: asyncio.Event | None = None) -> None:
    with root_lock(config.root, "essaim registry serve"):
        executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="registry")
        app = build_application(config, executor)
        tls = (
            tls_context(config.tls_cert, config.tls_key)
            if config.tls_cert and config.tls_key
            else None
        )
        server = Server(app)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        purging = config.upload_purging
        purger: asyncio.Task[None] | None = None
        try:
            if purging.enabled:
                # Before listening: no session can be in use yet.
                await purge_once(app.registry.uploads, purging)
                purger = asyncio.create_task(purge_periodically(app.registry.uploads, purging))
            await server.listen_tcp(config.host, config.port, tls)
            log.info(
                "essaim registry listening on %s://%s:%d, root %s",
                "https" if tls else "http", config.host, config.port, config.root,
            )  # fmt: skip
            if ready is not None:
                ready.set()
            await stop.wait()
        finally:
            if purger is not None:
                purger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purger
            await server.close()
            executor.shutdown(wait=True)
