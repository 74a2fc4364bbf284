"""Fixtures for integration tests: a real essaimd per module (or per test when the
test restarts it), seeded with busybox, driven by the real docker CLI and SDK.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.integration.daemon import EssaimDaemon

NEEDS = ("runc", "conmon", "docker")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    missing = [tool for tool in NEEDS if shutil.which(tool) is None]
    return f"missing {', '.join(missing)}" if missing else None


def new_root() -> Path:
    """A private root for one daemon, or a skip when this machine cannot run one."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    # Short paths: conmon's attach socket path must fit in sun_path.
    return Path(tempfile.mkdtemp(prefix="es-", dir="/tmp"))


D = TypeVar("D", bound=EssaimDaemon)


def running(daemon: D, prepare: Callable[[D], None] | None = None) -> Iterator[D]:
    """Prepare, seed and start `daemon`, hand it over, and remove all it made after."""
    try:
        if prepare is not None:
            prepare(daemon)
        daemon.seed_busybox()
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()


@pytest.fixture(scope="module")
def daemon() -> Iterator[EssaimDaemon]:
    yield from running(EssaimDaemon(new_root()))


@pytest.fixture
def own_daemon() -> Iterator[EssaimDaemon]:
    """A daemon for one test alone (tests that kill or restart it)."""
    yield from running(EssaimDaemon(new_root()))
