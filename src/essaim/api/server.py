"""The HTTP/1.1 server behind every essaim endpoint: h11 over asyncio streams.

Keep-alive, concurrent connections, chunked request bodies, chunked responses flushed
per message, and connection hijack (101 in its own write) for attach and exec.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import logging
import os
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import unquote

import h11

from essaim.api.hijack import HijackedStream
from essaim.api.request import ClientGone, QueryParams
from essaim.api.responses import AnyResponse, HijackResponse, Response, StreamResponse
from essaim.api.tls import ByteReader, ByteWriter
from essaim.api.tls import accept as accept_tls
from essaim.errors import InvalidParameter

log = logging.getLogger(__name__)

READ_SIZE = 65536


class _Connection:
    """One client connection; requests on it are served one after the other."""

    def __init__(
        self,
        reader: ByteReader,
        writer: ByteWriter,
        app: Application,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.app = app
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=256 * 1024)
        # Whether the current request's body was asked for with `100 Continue`.
        self._continued = False

    async def _next_event(self) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self.reader.read(READ_SIZE)
            except (ConnectionError, OSError):
                data = b""
            self.h11.receive_data(data)

    async def _send(self, *events: h11.Event) -> None:
        for event in events:
            data = self.h11.send(event)
            if data:
                self.writer.write(data)
        try:
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ClientGone from exc

    async def _body_chunks(self) -> AsyncIterator[bytes]:
        if self.h11.their_state is not h11.SEND_BODY:
            # A bodiless request, its end already read: h11 would wait for the next one.
            return
        if self.h11.they_are_waiting_for_100_continue:
            # curl and other clients hold a body back until asked (Go's server asks
            # when the handler first reads it, as here).
            self._continued = True
            await self._send(
                h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
            )
        while True:
            try:
                event = await self._next_event()
            except h11.RemoteProtocolError as exc:
                raise InvalidParameter(f"malformed request body: {exc}") from None
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                return
            else:
                raise ClientGone

    async def serve(self) -> None:
        try:
            while True:
                event = await self._next_event()
                if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return
                if not isinstance(event, h11.Request):
                    return
                expects_continue = self.h11.they_are_waiting_for_100_continue
                self._continued = False
                hijacked = await self._serve_one(event)
                if hijacked:
                    return
                if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is h11.MUST_CLOSE:
                    return
                if expects_continue and not self._continued:
                    # The client may never send a body it was not asked for.
                    return
                # Drain what the handler did not read of the body, then reuse the connection.
                while self.h11.their_state is h11.SEND_BODY:
                    async for _ in self._body_chunks():
                        pass
                if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
                    return
                self.h11.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            await self._refuse(exc)
        except (ClientGone, ConnectionError):
            return
        finally:
            if not self.writer.is_closing():
                self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def _refuse(self, exc: h11.RemoteProtocolError) -> None:
        """A request h11 cannot parse gets Go's plain-text 400, then the connection closes."""
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status = exc.error_status_hint
        body = f"{status} {_reason(status)}".encode()
        log.debug("malformed request: %s", exc)
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
        with contextlib.suppress(h11.LocalProtocolError, ClientGone):
            await self._send(_head(status, headers), h11.Data(data=body))

    async def _serve_one(self, event: h11.Request) -> bool:
        headers: dict[str, str] = {}
        for raw_name, raw_value in event.headers:
            name, value = raw_name.decode().lower(), raw_value.decode("latin-1")
            # A repeated field is one comma-separated list (RFC 9110 5.3): Go clients
            # send each type they accept (a registry's manifests) on its own line.
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        target = event.target.decode("latin-1")
        method = event.method.decode()
        if "transfer-encoding" not in headers and headers.get("content-length", "0") == "0":
            # No body: finish reading the request now, so a streamed reply can watch the
            # connection for a hang-up (and let the producer go) from the first byte.
            end = self.h11.next_event()
            assert isinstance(end, h11.EndOfMessage), end
        response = await self.app.dispatch(method, target, headers, self._body_chunks)
        if isinstance(response, HijackResponse):
            # The request body (exec start's JSON) was read by the handler already.
            while self.h11.their_state is h11.SEND_BODY:
                async for _ in self._body_chunks():
                    pass
            await self._hijack(response, headers)
            return True
        base = self.app.common_headers()
        if isinstance(response, Response):
            hdrs = base + response.headers
            if response.content_type:
                hdrs.append(("Content-Type", response.content_type))
            body = b"" if response.status in (204, 304) else response.body
            if response.status not in (204, 304):
                hdrs.append(("Content-Length", str(len(body))))
            h11_body = b"" if method == "HEAD" else body
            await self._send(_head(response.status, hdrs))
            if h11_body:
                await self._send(h11.Data(data=h11_body))
            await self._send(h11.EndOfMessage())
            return False
        if method == "HEAD":
            # Headers only; the producer never runs.
            with contextlib.suppress(Exception):
                await response.chunks.aclose()  # type: ignore[attr-defined]
            await self._send(_head(response.status, [*base, *response.head_headers()]))
            await self._send(h11.EndOfMessage())
            return False
        await self._stream(response, base)
        return False

    async def _stream(self, response: StreamResponse, base: list[tuple[str, str]]) -> None:
        # No Content-Length (unless `length` says it): h11 frames the body with chunked
        # encoding for HTTP/1.1.
        await self._send(_head(response.status, [*base, *response.head_headers()]))
        producer = asyncio.ensure_future(self._pump(response.chunks))
        # Watch for a hang-up only once the request body is read: until then the body
        # belongs to the producer (an import streams its upload while reporting).
        body_done = self.h11.their_state is h11.DONE
        hangup = asyncio.ensure_future(
            self._watch_hangup() if body_done else asyncio.Event().wait()
        )
        try:
            await asyncio.wait({producer, hangup}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (producer, hangup):
                task.cancel()
            for task in (producer, hangup):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await response.chunks.aclose()  # type: ignore[attr-defined]
        if producer.cancelled():
            raise ClientGone
        failure = producer.exception()
        if failure is not None:
            if not isinstance(failure, ClientGone):
                # Headers are out: all a client can be told is that the body ends early.
                log.error("stream failed", exc_info=failure)
            raise ClientGone
        await self._send(h11.EndOfMessage())

    async def _pump(self, chunks: AsyncIterator[bytes]) -> None:
        async for chunk in chunks:
            if chunk:
                await self._send(h11.Data(data=chunk))

    async def _watch_hangup(self) -> None:
        """Returns when the client hangs up while we stream to it."""
        while True:
            try:
                data = await self.reader.read(READ_SIZE)
            except (ConnectionError, OSError):
                return
            if not data:
                return
            # A pipelined next request: keep it for h11.
            self.h11.receive_data(data)

    async def _hijack(self, response: HijackResponse, headers: dict[str, str]) -> None:
        upgrade = "upgrade" in headers.get("connection", "").lower() and "upgrade" in headers
        # h11 exports the state but leaves it out of __all__.
        switching = h11.MIGHT_SWITCH_PROTOCOL  # type: ignore[attr-defined]
        if upgrade and self.h11.their_state is switching:
            head = h11.InformationalResponse(
                status_code=101,
                headers=[
                    ("Content-Type", response.content_type),
                    ("Connection", "Upgrade"),
                    ("Upgrade", headers.get("upgrade", "tcp")),
                ],
                reason=b"UPGRADED",
            )
            self.writer.write(self.h11.send(head) or b"")
        else:
            # Old clients hijack without asking to upgrade: moby answers 200 and hijacks.
            self.writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: " + response.content_type.encode() + b"\r\n\r\n"
            )
        # Bytes the client sent right behind its request (stdin) were read with it.
        buffered = bytes(self.h11.trailing_data[0])
        try:
            # The header goes out in its own write, before any stream byte (docker-py reads
            # the socket from under http.client, which would swallow bytes sent with it).
            await self.writer.drain()
        except (ConnectionError, OSError):
            return
        stream = HijackedStream(self.reader, self.writer, buffered)
        try:
            await response.run(stream)
        except Exception:
            log.exception("hijacked session failed")
        finally:
            await stream.close()


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _head(status: int, headers: list[tuple[str, str]]) -> h11.Response:
    """A response head with the standard reason phrase (Go clients print it in errors)."""
    return h11.Response(status_code=status, headers=headers, reason=_reason(status).encode())


class Application:
    """Turns a raw request into a `Request`, dispatches it, maps errors (see api.app)."""

    async def dispatch(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Callable[[], AsyncIterator[bytes]],
    ) -> AnyResponse:
        raise NotImplementedError

    def common_headers(self) -> list[tuple[str, str]]:
        return []


def parse_target(target: str) -> tuple[str, QueryParams]:
    path, _, query = target.partition("?")
    return unquote(path), QueryParams(query)


class Server:
    """Listens on unix sockets and TCP (TLS) endpoints; owns every connection task."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: set[asyncio.Task[None]] = set()
        # Unix socket files we created, with their inode: removed at close if still ours.
        self._socket_files: list[tuple[Path, int]] = []

    async def _on_client(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        # The connection runs in a task of ours, which close() cancels: the task asyncio
        # runs this callback in reports an error if it ends cancelled.
        task = asyncio.ensure_future(self._serve(reader, writer, tls))
        self._connections.add(task)
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being cancelled ourselves, not just the connection
        finally:
            self._connections.discard(task)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls: ssl.SSLContext | None
    ) -> None:
        if tls is None:
            await _Connection(reader, writer, self.app).serve()
            return
        try:
            tls_reader, tls_writer = await accept_tls(reader, writer, tls)
        except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
            log.debug("TLS handshake with %s failed: %s", writer.get_extra_info("peername"), exc)
            writer.close()
            return
        await _Connection(tls_reader, tls_writer, self.app).serve()

    async def listen_unix(self, path: Path, mode: int = 0o660) -> None:
        """Listen on `path`; a stale socket file is replaced, a live one is refused."""
        os.makedirs(path.parent, exist_ok=True)
        if await _answers(path):
            raise SocketInUse(f"{path} is in use by another daemon")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        server = await asyncio.start_unix_server(self._on_client, path=str(path), limit=READ_SIZE)
        os.chmod(path, mode)
        self._servers.append(server)
        self._socket_files.append((path, os.stat(path).st_ino))

    async def listen_tcp(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        # TLS is ours (api/tls.py), not asyncio's: a client's half-close must not end
        # the connection while a hijacked stream still has output to send.
        server = await asyncio.start_server(
            functools.partial(self._on_client, tls=tls), host=host, port=port, limit=READ_SIZE
        )
        self._servers.append(server)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        for path, inode in self._socket_files:
            # Not if another daemon has since put its own socket there.
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
        self._socket_files.clear()


class SocketInUse(Exception):
    pass


async def _answers(path: Path) -> bool:
    """Whether something accepts connections on the unix socket at `path`."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
