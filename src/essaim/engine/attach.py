"""One attach session: relays a client's hijacked connection to the container's
conmon attach socket (stdout/stderr packets out, stdin in), with Docker's framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from typing import Protocol

from essaim.runtime.conmon import ATTACH_PACKET, STDERR_PIPE, STDOUT_PIPE

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q

_CTRL = {chr(c): c - 0x60 for c in range(0x61, 0x7B)} | {
    "@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31,
}  # fmt: skip


class ClientStream(Protocol):
    async def read(self, limit: int = ...) -> bytes: ...
    async def write(self, data: bytes) -> bool: ...


def parse_detach_keys(spec: str) -> bytes:
    """Docker's `--detach-keys` syntax: comma-separated `ctrl-<x>` or single characters."""
    from essaim.errors import InvalidParameter

    if not spec:
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in spec.split(","):
        if key.startswith("ctrl-") and len(key) == 6 and key[5] in _CTRL:
            out.append(_CTRL[key[5]])
        elif len(key) == 1:
            out.append(ord(key))
        else:
            raise InvalidParameter(f"Invalid escape keys ({spec}) provided")
    return bytes(out)


def frame(stream: int, payload: bytes) -> bytes:
    """Docker's multiplexed frame: [stream, 0, 0, 0, big-endian length] + payload."""
    return struct.pack(">BxxxI", stream, len(payload)) + payload


@dataclass
class AttachOptions:
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    # Close the container's stdin when this client's stdin ends (run -i without -t).
    stdin_once: bool
    detach_keys: bytes = DEFAULT_DETACH_KEYS


@dataclass
class AttachSession:
    client: ClientStream
    options: AttachOptions
    done: asyncio.Event = field(default_factory=asyncio.Event)
    detached: bool = False

    async def run(self, conmon: socket.socket) -> None:
        """Relay until the container's output ends, the client detaches or leaves."""
        output = asyncio.ensure_future(self._pump_output(conmon))
        inbound = asyncio.ensure_future(self._pump_input(conmon))
        try:
            # Either side ending ends the session: output at the container's exit, input
            # at a detach or at the end of stdin (other than run -i, which waits, below).
            await asyncio.wait({output, inbound}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (output, inbound):
                task.cancel()
            for task in (output, inbound):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            conmon.close()
            self.done.set()

    async def _pump_output(self, conmon: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                packet = await loop.sock_recv(conmon, ATTACH_PACKET)
            except OSError:
                return
            if not packet:
                return
            pipe, payload = packet[0], packet[1:]
            if not payload:
                continue
            if self.options.tty:
                wanted, data = self.options.stdout or self.options.stderr, payload
            elif pipe == STDOUT_PIPE:
                wanted, data = self.options.stdout, frame(1, payload)
            elif pipe == STDERR_PIPE:
                wanted, data = self.options.stderr, frame(2, payload)
            else:
                continue
            if wanted and not await self.client.write(data):
                return

    async def _pump_input(self, conmon: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        if not self.options.stdin:
            # A client without stdin half-closes at once; that is not a hang-up. Wait for
            # the output side to finish instead.
            await asyncio.Event().wait()
        keys = self.options.detach_keys
        matched = 0
        while True:
            data = await self.client.read(32768)
            if not data:
                if self.options.stdin_once and not self.options.tty:
                    with contextlib.suppress(OSError):
                        conmon.shutdown(socket.SHUT_WR)
                    await asyncio.Event().wait()  # output continues until the exit
                return
            if self.options.tty and keys:
                out = bytearray()
                for byte in data:
                    if byte == keys[matched]:
                        matched += 1
                        if matched == len(keys):
                            self.detached = True
                            if out:
                                await _send(loop, conmon, bytes(out))
                            return
                        continue
                    if matched:
                        out += keys[:matched]
                        matched = 0
                    out.append(byte)
                data = bytes(out)
            if data:
                await _send(loop, conmon, data)


async def _send(loop: asyncio.AbstractEventLoop, conmon: socket.socket, data: bytes) -> None:
    # conmon reads the attach socket in packets; keep each under its buffer size.
    for i in range(0, len(data), 8192):
        with contextlib.suppress(OSError):
            await loop.sock_sendall(conmon, data[i : i + 8192])
