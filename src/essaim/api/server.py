"""The HTTP/1.1 server behind every essaim endpoint: h11 over asyncio streams.

Keep-alive, concurrent connections, chunked request bodies, chunked responses flushed
per message, and connection hijack (101 in its own write) for attach and exec.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import unquote

import h11

from essaim.api.hijack import HijackedStream
from essaim.api.request import QueryParams
from essaim.api.responses import AnyResponse, HijackResponse, Response, StreamResponse

log = logging.getLogger(__name__)

READ_SIZE = 65536


class _ClientGone(Exception):
    pass


class _Connection:
    """One client connection; requests on it are served one after the other."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        app: Application,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.app = app
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=256 * 1024)

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
            raise _ClientGone from exc

    async def _body_chunks(self) -> AsyncIterator[bytes]:
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                return
            else:
                raise _ClientGone

    async def serve(self) -> None:
        try:
            while True:
                event = await self._next_event()
                if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return
                if not isinstance(event, h11.Request):
                    return
                hijacked = await self._serve_one(event)
                if hijacked:
                    return
                if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is h11.MUST_CLOSE:
                    return
                # Drain what the handler did not read of the body, then reuse the connection.
                while self.h11.their_state is h11.SEND_BODY:
                    async for _ in self._body_chunks():
                        pass
                if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
                    return
                self.h11.start_next_cycle()
        except (_ClientGone, h11.RemoteProtocolError, ConnectionError):
            return
        finally:
            if not self.writer.is_closing():
                self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def _serve_one(self, event: h11.Request) -> bool:
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
        target = event.target.decode("latin-1")
        method = event.method.decode()
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
            await self._send(h11.Response(status_code=response.status, headers=hdrs))
            if h11_body:
                await self._send(h11.Data(data=h11_body))
            await self._send(h11.EndOfMessage())
            return False
        await self._stream(response, base)
        return False

    async def _stream(self, response: StreamResponse, base: list[tuple[str, str]]) -> None:
        hdrs = [*base, *response.headers, ("Content-Type", response.content_type)]
        # No Content-Length: h11 frames the body with chunked encoding for HTTP/1.1.
        await self._send(h11.Response(status_code=response.status, headers=hdrs))
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
        if producer.cancelled() or producer.exception() is not None:
            raise _ClientGone
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
            buffered = bytes(self.h11.trailing_data[0])
        else:
            # Old clients hijack without asking to upgrade: moby answers 200 and hijacks.
            self.writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: " + response.content_type.encode() + b"\r\n\r\n"
            )
            buffered = b""
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

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await _Connection(reader, writer, self.app).serve()
        finally:
            self._connections.discard(task)

    async def listen_unix(self, path: Path, mode: int = 0o660) -> None:
        os.makedirs(path.parent, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        server = await asyncio.start_unix_server(self._on_client, path=str(path), limit=READ_SIZE)
        os.chmod(path, mode)
        self._servers.append(server)

    async def listen_tcp(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        server = await asyncio.start_server(
            self._on_client, host=host, port=port, ssl=tls, limit=READ_SIZE
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
