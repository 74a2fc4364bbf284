"""A streamed archive releases its container (unlock, unmount) exactly once, even when
the request is cancelled while that release runs (a client hanging up as it ends)."""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import pytest

from essaim.engine.container_filesystem import PipeStream

pytestmark = pytest.mark.unit


def test_release_survives_a_cancelled_reader() -> None:
    released: list[str] = []

    async def scenario() -> None:
        started = asyncio.Event()

        async def on_close() -> None:
            started.set()
            await asyncio.sleep(0.05)  # an unmount in the executor
            released.append("done")

        def produce(out: BinaryIO) -> None:
            out.write(b"x" * 10)

        with ThreadPoolExecutor(1) as executor:
            stream = PipeStream(produce, executor, on_close)

            async def read_all() -> None:
                async for _ in stream:
                    pass

            reader = asyncio.ensure_future(read_all())
            await started.wait()
            reader.cancel()  # the server cancels its pump when the client hangs up
            with pytest.raises(asyncio.CancelledError):
                await reader
            await stream.aclose()  # what the server's cleanup does next
            await stream.aclose()

    asyncio.run(scenario())
    assert released == ["done"]
