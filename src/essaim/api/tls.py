"""TLS for API connections, run over memory BIOs on a plain TCP stream.

asyncio's own TLS transport shuts the whole connection down when the peer half-closes
its TCP side, and the docker CLI does exactly that on a hijacked TLS connection (it
closes the raw socket's write side once stdin is done, without a close_notify). The
container's output would be lost. Here a TCP EOF is only the end of what the client
sends; we keep writing until we are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any, Protocol

HANDSHAKE_TIMEOUT = 10.0
_RAW_READ = 65536


class ByteReader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class ByteWriter(Protocol):
    """The part of asyncio.StreamWriter the API server uses."""

    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def is_closing(self) -> bool: ...
    def can_write_eof(self) -> bool: ...
    def write_eof(self) -> None: ...
    def close(self) -> None: ...
    async def wait_closed(self) -> None: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


class TlsWriter:
    def __init__(
        self, raw: asyncio.StreamWriter, tls: ssl.SSLObject, outgoing: ssl.MemoryBIO
    ) -> None:
        self._raw = raw
        self._tls = tls
        self._outgoing = outgoing
        self._eof_sent = False

    def flush(self) -> None:
        """Put what TLS produced (records, alerts, session tickets) on the wire."""
        data = self._outgoing.read()
        if data and not self._raw.is_closing():
            self._raw.write(data)

    def write(self, data: bytes) -> None:
        if self._eof_sent or self._raw.is_closing():
            return
        view = memoryview(data)
        while view:
            written = self._tls.write(view)
            view = view[written:]
            self.flush()

    async def drain(self) -> None:
        await self._raw.drain()

    def is_closing(self) -> bool:
        return self._raw.is_closing()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """close_notify (what TLS clients read as the end), then the TCP half-close."""
        if self._eof_sent:
            return
        self._eof_sent = True
        with contextlib.suppress(ssl.SSLError):
            self._tls.unwrap()
        self.flush()
        if self._raw.can_write_eof():
            self._raw.write_eof()

    def close(self) -> None:
        self._raw.close()

    async def wait_closed(self) -> None:
        await self._raw.wait_closed()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._tls
        if name == "peercert":
            return self._tls.getpeercert()
        return self._raw.get_extra_info(name, default)


class TlsReader:
    """Decrypted bytes, pulled from the raw stream on demand (so a slow consumer slows
    the client down instead of filling memory)."""

    def __init__(
        self,
        raw: asyncio.StreamReader,
        tls: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        writer: TlsWriter,
    ) -> None:
        self._raw = raw
        self._tls = tls
        self._incoming = incoming
        self._writer = writer
        self._eof = False

    async def read(self, n: int = -1) -> bytes:
        size = n if n > 0 else _RAW_READ
        while not self._eof:
            try:
                data = self._tls.read(size)
            except ssl.SSLWantReadError:
                data = None
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                data = b""  # close_notify, or the end of the raw stream
            if data is not None:
                if not data:
                    self._eof = True
                return data
            self._writer.flush()  # TLS 1.3 may answer key updates while reading
            raw = await self._raw.read(_RAW_READ)
            if not raw:
                self._eof = True  # a TCP half-close: the client is done sending
                return b""
            self._incoming.write(raw)
        return b""


async def accept(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext
) -> tuple[TlsReader, TlsWriter]:
    """The server side of the handshake; raises ssl.SSLError, ConnectionError or
    TimeoutError when it fails (a client without a valid certificate, say)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=True)
    tls_writer = TlsWriter(writer, tls, outgoing)
    async with asyncio.timeout(HANDSHAKE_TIMEOUT):
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                tls_writer.flush()  # the alert tells the client why
                await writer.drain()
                raise
            tls_writer.flush()
            await writer.drain()
            raw = await reader.read(_RAW_READ)
            if not raw:
                raise ConnectionError("client closed the connection during the handshake")
            incoming.write(raw)
    tls_writer.flush()
    await writer.drain()
    return TlsReader(reader, tls, incoming, tls_writer), tls_writer
