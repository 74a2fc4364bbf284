"""`docker export` (a tar of the whole container filesystem, streamed) and `docker diff`
(the container's changes from its overlay layer, as Docker's overlay driver reports)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator

import pytest

from tests.integration.daemon import EssaimDaemon


@pytest.fixture
def running(daemon: EssaimDaemon) -> Iterator[str]:
    r = daemon.docker("run", "-d", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    yield cid
    daemon.docker("rm", "-f", cid)


def sh(daemon: EssaimDaemon, cid: str, script: str) -> None:
    r = daemon.docker("exec", cid, "sh", "-c", script)
    assert r.returncode == 0, r.stderr


def diff(daemon: EssaimDaemon, ref: str) -> list[str]:
    r = daemon.docker("diff", ref)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_fresh_container_has_no_changes(daemon: EssaimDaemon, running: str) -> None:
    assert diff(daemon, running) == []
    assert daemon.client().api.diff(running) is None  # moby's `null`


def test_diff_reports_added_changed_and_deleted(daemon: EssaimDaemon, running: str) -> None:
    sh(daemon, running, "mkdir -p /new/sub && echo x > /new/sub/f && echo y >> /etc/passwd")
    sh(daemon, running, "rm /bin/ls && rm -rf /home")
    changes = diff(daemon, running)
    for line in ("A /new", "A /new/sub", "A /new/sub/f", "C /etc/passwd", "C /bin", "D /bin/ls"):
        assert line in changes, changes
    assert "D /home" in changes
    kinds = {c["Path"]: c["Kind"] for c in daemon.client().api.diff(running)}
    assert kinds["/new"] == 1 and kinds["/etc/passwd"] == 0 and kinds["/bin/ls"] == 2


def test_diff_of_a_stopped_container_and_an_opaque_directory(daemon: EssaimDaemon) -> None:
    script = "rm -rf /home && mkdir /home && echo n > /home/new"
    r = daemon.docker("run", "--name", "opaque", "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    try:
        # Recreated over its deletion, /home is opaque: Docker reports it deleted.
        changes = diff(daemon, "opaque")
        assert "D /home" in changes, changes
        assert "A /home/new" in changes, changes
    finally:
        daemon.docker("rm", "-f", "opaque")


def test_diff_of_an_unknown_container_is_404(daemon: EssaimDaemon) -> None:
    r = daemon.docker("diff", "no-such-container")
    assert r.returncode != 0 and "No such container: no-such-container" in r.stderr


def test_export_streams_the_merged_filesystem(daemon: EssaimDaemon, running: str) -> None:
    sh(daemon, running, "echo exported > /marker && rm /bin/ls")
    listing = subprocess.run(
        "docker export " + running + " | tar t",
        shell=True, env=daemon.env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    names = listing.stdout.splitlines()
    assert "marker" in names and "bin/" in names and "bin/sh" in names
    assert "bin/ls" not in names
    assert not any(n.startswith(("/", "./")) for n in names)
    data = b"".join(daemon.client().api.export(running))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.extractfile("marker").read() == b"exported\n"  # type: ignore[union-attr]


def test_export_of_a_created_container_unmounts_after(
    daemon: EssaimDaemon, tmp_path: object
) -> None:
    cid = daemon.docker("create", "busybox").stdout.strip()
    try:
        out = daemon.root / "export.tar"
        r = daemon.docker("export", "-o", str(out), cid)
        assert r.returncode == 0, r.stderr
        with tarfile.open(out) as tar:
            assert "bin/busybox" in tar.getnames()
        rootfs = daemon.data_root / "containers" / cid / "rootfs"
        deadline = time.monotonic() + 10  # the client may be gone before the unmount
        while os.path.ismount(rootfs) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.ismount(rootfs)
        # The lock is free again: the container starts.
        assert daemon.docker("start", cid).returncode == 0
    finally:
        daemon.docker("rm", "-f", cid)
