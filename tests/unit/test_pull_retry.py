"""Layer downloads that fail midway, as dockerd handles them: the retry countdown, which
failures are retried, resuming with a Range request, starting over when the server
ignores it or the resumed bytes do not verify; and nothing left behind on final failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from essaim.image.content import ContentStore
from essaim.image.distribution import errors
from essaim.image.distribution.blobs import VerificationFailed, download
from essaim.image.distribution.client import RegistryClient
from essaim.image.distribution.credentials import NONE
from essaim.image.distribution.hosts import RegistryHosts
from essaim.image.distribution.retry import RetryPolicy, countdown_text, with_retries
from essaim.image.oci import Descriptor

BLOB = os.urandom(300_000)
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
DOCKERD = RetryPolicy()
FAST = RetryPolicy(second=0.0)


class Flaky(Exception):
    pass


def test_countdown_text_is_dockerds() -> None:
    assert countdown_text(5) == "Retrying in 5 seconds"
    assert countdown_text(1) == "Retrying in 1 second"


def run_with_retries(
    outcomes: list[Exception | None], policy: RetryPolicy = DOCKERD
) -> tuple[list[int], list[float], int, BaseException | None]:
    """Attempts that fail or succeed in turn, with a fake clock: (countdown, sleeps,
    attempts made, the error raised)."""
    waits: list[int] = []
    slept: list[float] = []
    attempts = 0

    async def attempt() -> str:
        nonlocal attempts
        outcome = outcomes[attempts]
        attempts += 1
        if outcome is not None:
            raise outcome
        return "done"

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def scenario() -> BaseException | None:
        try:
            await with_retries(
                attempt, policy, retryable=lambda e: isinstance(e, Flaky),
                on_wait=waits.append, sleep=sleep,
            )  # fmt: skip
        except Exception as exc:
            return exc
        return None

    raised = asyncio.run(scenario())
    return waits, slept, attempts, raised


def test_each_failure_waits_five_seconds_more_counted_down() -> None:
    waits, slept, attempts, raised = run_with_retries([Flaky(), Flaky(), None])
    assert raised is None and attempts == 3
    assert waits == [5, 4, 3, 2, 1, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    assert slept == [1.0] * 15


def test_five_attempts_then_the_last_failure() -> None:
    last = Flaky("fifth")
    waits, _, attempts, raised = run_with_retries([Flaky(), Flaky(), Flaky(), Flaky(), last])
    assert attempts == 5
    assert raised is last
    assert len(waits) == 5 + 10 + 15 + 20  # no countdown after the last attempt


def test_a_failure_no_retry_cures_is_raised_at_once() -> None:
    fatal = ValueError("digest mismatch")
    waits, _, attempts, raised = run_with_retries([fatal, None])
    assert (waits, attempts, raised) == ([], 1, fatal)


def test_the_number_of_attempts_and_the_second_are_settings() -> None:
    _, slept, attempts, raised = run_with_retries(
        [Flaky(), Flaky()], RetryPolicy(attempts=2, second=0.001)
    )
    assert attempts == 2 and isinstance(raised, Flaky)
    assert slept == [0.001] * 5


# A registry on a loopback port whose blob answers follow a script.


@dataclass
class Answer:
    honour_range: bool = True
    cut_after: int | None = None  # close the connection after this many body bytes
    status: int | None = None  # answer this status with an empty body instead
    corrupt_from: int | None = None  # flip the bytes of the blob from this offset on


@dataclass
class ScriptedRegistry:
    answers: list[Answer]
    ranges: list[str | None] = field(default_factory=list)  # the Range header of each GET
    server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.readexactly(1)
            if first == b"\x16":
                return  # a TLS hello: plain HTTP here, the client falls back to it
            head = first
            while True:
                head += await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                if path == "/v2/":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                    await writer.drain()
                    head = b""
                    continue
                await self._blob(headers.get("range"), writer)
                return
        except (asyncio.IncompleteReadError, ConnectionError, IndexError):
            pass  # the client's TLS hello, or it went away
        finally:
            writer.close()

    async def _blob(self, range_header: str | None, writer: asyncio.StreamWriter) -> None:
        self.ranges.append(range_header)
        answer = self.answers.pop(0) if self.answers else Answer()
        if answer.status is not None:
            writer.write(f"HTTP/1.1 {answer.status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
            return
        data = BLOB
        if answer.corrupt_from is not None:
            data = data[: answer.corrupt_from] + bytes(
                b ^ 0xFF for b in data[answer.corrupt_from :]
            )
        start = 0
        if range_header and answer.honour_range:
            start = int(range_header.removeprefix("bytes=").rstrip("-"))
            head = (
                f"HTTP/1.1 206 Partial Content\r\nContent-Length: {len(data) - start}\r\n"
                f"Content-Range: bytes {start}-{len(data) - 1}/{len(data)}\r\n\r\n"
            )
        else:
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\n\r\n"
        body = data[start:]
        if answer.cut_after is not None:
            body = body[: answer.cut_after]
        writer.write(head.encode() + body)
        await writer.drain()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@dataclass
class Outcome:
    error: BaseException | None
    offsets: list[int]
    received: int
    waits: list[int]


def pull_blob(
    tmp_path: Path, answers: list[Answer], policy: RetryPolicy = FAST
) -> tuple[Outcome, ScriptedRegistry, ContentStore]:
    content = ContentStore(tmp_path / "content")
    registry = ScriptedRegistry(answers)
    offsets: list[int] = []
    waits: list[int] = []
    received = 0

    def count(n: int) -> None:
        nonlocal received
        received += n

    async def scenario() -> BaseException | None:
        await registry.start()
        try:
            async with RegistryClient(RegistryHosts(), f"127.0.0.1:{registry.port}", NONE) as c:
                await download(
                    c, content, "x", Descriptor("application/octet-stream", DIGEST, len(BLOB)),
                    ["repository:x:pull"], policy=policy, on_attempt=offsets.append,
                    on_bytes=count, on_wait=waits.append,
                )  # fmt: skip
        except Exception as exc:
            return exc
        finally:
            await registry.close()
        return None

    error = asyncio.run(scenario())
    return Outcome(error, offsets, received, waits), registry, content


def stored(content: ContentStore) -> bytes | None:
    path = content.path(DIGEST)
    return path.read_bytes() if path.exists() else None


def test_a_cut_connection_resumes_from_the_bytes_received(tmp_path: Path) -> None:
    outcome, registry, content = pull_blob(tmp_path, [Answer(cut_after=100_000)])
    assert outcome.error is None
    assert registry.ranges == [None, "bytes=100000-"]
    assert outcome.offsets == [0, 100_000]
    assert outcome.received == len(BLOB)  # nothing fetched twice
    assert outcome.waits == [5, 4, 3, 2, 1]
    assert stored(content) == BLOB
    assert list(content.ingest_dir.iterdir()) == []


def test_a_server_that_ignores_range_is_read_from_the_start(tmp_path: Path) -> None:
    outcome, registry, content = pull_blob(
        tmp_path, [Answer(cut_after=100_000), Answer(honour_range=False)]
    )
    assert outcome.error is None
    assert registry.ranges == [None, "bytes=100000-"]
    assert outcome.offsets == [0, 0]
    assert stored(content) == BLOB


def test_resumed_bytes_that_do_not_verify_start_over(tmp_path: Path) -> None:
    outcome, registry, content = pull_blob(
        tmp_path, [Answer(cut_after=100_000), Answer(corrupt_from=200_000)]
    )
    assert outcome.error is None
    assert registry.ranges == [None, "bytes=100000-", None]
    assert outcome.offsets == [0, 100_000, 0]
    assert stored(content) == BLOB


def test_a_server_error_is_retried(tmp_path: Path) -> None:
    outcome, registry, content = pull_blob(tmp_path, [Answer(status=503)])
    assert outcome.error is None
    assert registry.ranges == [None, None]
    assert stored(content) == BLOB


@pytest.mark.parametrize("status", [404, 401, 403])
def test_a_client_error_is_not_retried(tmp_path: Path, status: int) -> None:
    outcome, registry, content = pull_blob(tmp_path, [Answer(status=status)])
    assert isinstance(outcome.error, errors.RegistryError)
    assert len(registry.ranges) == 1 and outcome.waits == []
    assert stored(content) is None
    assert list(content.ingest_dir.iterdir()) == []


def test_a_blob_that_does_not_verify_from_the_start_is_not_retried(tmp_path: Path) -> None:
    outcome, registry, content = pull_blob(tmp_path, [Answer(corrupt_from=0)])
    assert isinstance(outcome.error, VerificationFailed)
    assert str(outcome.error) == f"filesystem layer verification failed for digest {DIGEST}"
    assert len(registry.ranges) == 1
    assert stored(content) is None
    assert list(content.ingest_dir.iterdir()) == []


def test_after_the_last_attempt_nothing_is_left(tmp_path: Path) -> None:
    cut = [Answer(cut_after=10_000 * (i + 1)) for i in range(5)]
    outcome, registry, content = pull_blob(tmp_path, cut, RetryPolicy(attempts=3, second=0.0))
    assert isinstance(outcome.error, errors.TransportError)
    assert str(outcome.error).endswith(": unexpected EOF")
    assert registry.ranges == [None, "bytes=10000-", "bytes=30000-"]
    assert stored(content) is None
    assert list(content.ingest_dir.iterdir()) == []
