"""Upload purging: which sessions go (begun before the age, on disk or live and idle),
which stay (recent, or receiving bytes), and the durations `essaim registry serve` takes."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from essaim.cli.registry import _duration
from essaim.image.registry.errors import RegistryError
from essaim.image.registry.purge import UploadPurging, purge_once
from essaim.image.registry.storage import RegistryStorage
from essaim.image.registry.uploads import UploadSessions

NOW = 1_800_000_000.0
HOUR = 3600.0


@pytest.fixture
def storage(tmp_path: Path) -> RegistryStorage:
    s = RegistryStorage(tmp_path / "root")
    s.prepare()
    return s


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as pool:
        yield pool


def session_on_disk(storage: RegistryStorage, name: str, upload_id: str, started: float) -> Path:
    directory = storage.upload_dir(name, upload_id)
    directory.mkdir(parents=True)
    (directory / "data").write_bytes(b"partial")
    (directory / "startedat").write_text(f"{started:.0f}\n")
    return directory


def test_sessions_older_than_the_age_go_and_recent_ones_stay(
    storage: RegistryStorage, executor: ThreadPoolExecutor
) -> None:
    old = session_on_disk(storage, "a/b", "old", NOW - 200 * HOUR)
    recent = session_on_disk(storage, "a/b", "recent", NOW - HOUR)
    # A repository whose first push never finished has nothing but its upload.
    lonely = session_on_disk(storage, "never/pushed", "lonely", NOW - 169 * HOUR)
    sessions = UploadSessions(storage, executor)
    removed = asyncio.run(purge_once(sessions, UploadPurging(), clock=lambda: NOW))
    assert removed == 2
    assert not old.exists() and not lonely.exists()
    assert (recent / "data").read_bytes() == b"partial"


def test_a_session_without_startedat_is_aged_by_its_directory(
    storage: RegistryStorage, executor: ThreadPoolExecutor
) -> None:
    directory = storage.upload_dir("a", "crashed")
    directory.mkdir(parents=True)
    os.utime(directory, (NOW - 200 * HOUR, NOW - 200 * HOUR))
    sessions = UploadSessions(storage, executor)
    assert asyncio.run(purge_once(sessions, UploadPurging(), clock=lambda: NOW)) == 1
    assert not directory.exists()


def test_a_live_idle_session_is_purged_and_then_unknown(
    storage: RegistryStorage, executor: ThreadPoolExecutor
) -> None:
    sessions = UploadSessions(storage, executor)
    purging = UploadPurging(age=HOUR)

    async def scenario() -> None:
        upload = await sessions.start("a")
        assert await purge_once(sessions, purging) == 0  # just begun
        # Two hours on: the clock runs ahead instead of the file going back.
        later = time.time() + 2 * HOUR
        assert await purge_once(sessions, purging, clock=lambda: later) == 1
        assert not storage.upload_dir("a", upload.id).exists()
        with pytest.raises(RegistryError) as gone:
            await sessions.get("a", upload.id)
        assert gone.value.code == "BLOB_UPLOAD_UNKNOWN"

    asyncio.run(scenario())


def test_a_session_receiving_bytes_is_not_purged(
    storage: RegistryStorage, executor: ThreadPoolExecutor
) -> None:
    sessions = UploadSessions(storage, executor)
    purging = UploadPurging(age=HOUR)

    async def scenario() -> None:
        upload = await sessions.start("a")
        arrived, finish = asyncio.Event(), asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            yield b"first"
            arrived.set()
            await finish.wait()
            yield b"second"

        async def request() -> None:
            async with upload.lock:
                await sessions.append(upload, body())

        receiving = asyncio.create_task(request())
        await arrived.wait()
        assert await purge_once(sessions, purging, clock=lambda: 1e12) == 0
        finish.set()
        await receiving
        assert upload.offset == len(b"firstsecond")
        # Once idle, it is abandoned like any other.
        assert await purge_once(sessions, purging, clock=lambda: 1e12) == 1

    asyncio.run(scenario())


def test_a_request_waiting_on_a_purged_session_gets_upload_unknown(
    storage: RegistryStorage, executor: ThreadPoolExecutor
) -> None:
    sessions = UploadSessions(storage, executor)

    async def scenario() -> None:
        upload = await sessions.start("a")
        await sessions.purge(1e12)

        async def body() -> AsyncIterator[bytes]:
            yield b"late"

        with pytest.raises(RegistryError) as gone:
            await sessions.append(upload, body())
        assert gone.value.code == "BLOB_UPLOAD_UNKNOWN"

    asyncio.run(scenario())


def test_zero_disables_purging() -> None:
    assert UploadPurging().enabled
    assert not UploadPurging(age=0).enabled
    assert not UploadPurging(interval=0).enabled


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("168h", 168 * HOUR), ("24h", 24 * HOUR), ("1h30m", 5400.0), ("90s", 90.0),
     ("500ms", 0.5), ("90", 90.0), ("2.5", 2.5), ("0", 0.0)],
)  # fmt: skip
def test_purge_durations_are_go_durations_or_seconds(text: str, seconds: float) -> None:
    assert _duration(text) == seconds


@pytest.mark.parametrize("text", ["5x", "h", "", "-1h"])
def test_bad_purge_durations_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        _duration(text)
