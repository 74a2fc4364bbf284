"""Fixtures for integration tests: a real essaimd per module (or per test when the
test restarts it), seeded with busybox, driven by the real docker CLI and SDK.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import EssaimDaemon

NEEDS = ("runc", "conmon", "docker")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    missing = [tool for tool in NEEDS if shutil.which(tool) is None]
    return f"missing {', '.join(missing)}" if missing else None


def _new_daemon() -> EssaimDaemon:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    # Short paths: conmon's attach socket path must fit in sun_path.
    root = Path(tempfile.mkdtemp(prefix="es-", dir="/tmp"))
    daemon = EssaimDaemon(root)
    daemon.seed_busybox()
    return daemon


@pytest.fixture(scope="module")
def daemon() -> Iterator[EssaimDaemon]:
    d = _new_daemon()
    try:
        d.start()
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def own_daemon() -> Iterator[EssaimDaemon]:
    """A daemon for one test alone (tests that kill or restart it)."""
    d = _new_daemon()
    try:
        d.start()
        yield d
    finally:
        d.cleanup()
