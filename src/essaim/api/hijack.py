"""A hijacked API connection: raw bytes both ways after the 101 answer.

A read EOF is only the client's half-close (it finished sending stdin), never a hang-up.
"""

from __future__ import annotations

import contextlib

from essaim.api.tls import ByteReader, ByteWriter


class HijackedStream:
    def __init__(self, reader: ByteReader, writer: ByteWriter, buffered: bytes) -> None:
        self._reader = reader
        self._writer = writer
        self._buffered = buffered
        self.read_eof = False

    async def read(self, limit: int = 65536) -> bytes:
        """Bytes from the client; b"" once it half-closed or hung up."""
        if self._buffered:
            data, self._buffered = self._buffered[:limit], self._buffered[limit:]
            return data
        if self.read_eof:
            return b""
        try:
            data = await self._reader.read(limit)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.read_eof = True
        return data

    async def write(self, data: bytes) -> bool:
        """Write and flush; False once the client is gone."""
        if self._writer.is_closing():
            return False
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError):
            return False
        return True

    @property
    def closed(self) -> bool:
        return self._writer.is_closing()

    async def close(self) -> None:
        """Shut our side down: write EOF first so the client sees the end of output."""
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            if self._writer.can_write_eof() and not self._writer.is_closing():
                self._writer.write_eof()
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
