"""Long operations answered as a stream of JSON messages (pull, push, build): a failure
before the first message is a plain HTTP error, after it an in-stream `errorDetail`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from essaim.api.responses import AnyResponse, StreamResponse
from essaim.errors import EssaimError
from essaim.image.distribution.progress import Channel, Emit, Message, error

log = logging.getLogger(__name__)

Work = Callable[[Emit], Awaitable[object]]


def line(message: Message) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\r\n"


def failure_message(exc: BaseException) -> Message:
    """The `errorDetail` message for a failure once the stream has begun."""
    if isinstance(exc, EssaimError):
        return error(exc.message)
    log.error("streamed operation failed", exc_info=exc)
    return error(str(exc) or type(exc).__name__)


async def streamed(
    work: Work, failure: Callable[[BaseException], Message] = failure_message
) -> AnyResponse:
    """Run `work`; its messages become a chunked JSON stream once the first is out."""
    channel = Channel()

    async def run() -> None:
        try:
            await work(channel.emit)
        finally:
            channel.close()

    task = asyncio.ensure_future(run())
    try:
        first = await channel.next()
    except BaseException:
        task.cancel()
        raise
    if first is None:
        task.result()  # nothing was said: a failure is a plain HTTP error

    async def body() -> AsyncIterator[bytes]:
        try:
            message = first
            while message is not None:
                yield line(message)
                message = await channel.next()
            exc = task.exception()
            if exc is not None:
                yield line(failure(exc))
        finally:
            if not task.done():  # the client went away: stop the work
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    return StreamResponse(body())
