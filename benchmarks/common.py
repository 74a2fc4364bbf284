"""What the benchmarks share: a private essaimd, interleaved timing, a quiet daemon
between samples, the busybox rootfs and essaim's own OCI config for raw runc runs, and
the report lines.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.daemon import EssaimDaemon


@contextlib.contextmanager
def benchmark_daemon() -> Iterator[tuple[Path, EssaimDaemon]]:
    """A private essaimd seeded with busybox and started, in a scratch root (yielded with
    it) that goes afterwards. It logs at info, the level essaimd runs at by default: a
    debug log would be measured too."""
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    root = Path(tempfile.mkdtemp(prefix="es-bench-", dir="/tmp"))
    daemon = EssaimDaemon(root / "essaim", log_level="info")
    try:
        daemon.seed_busybox()
        daemon.start()
        yield root, daemon
    finally:
        daemon.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def timed(
    commands: dict[str, Callable[[], None]], runs: int, settle: Callable[[], None]
) -> dict[str, list[float]]:
    """Each command `runs` times, interleaved round by round, so that the machine's
    drift (other load, frequency, caches) weighs on every command alike; `settle` runs
    untimed after each command."""
    for command in commands.values():
        command()  # warm caches (page cache, first exec of each binary)
        settle()
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            start = time.perf_counter()
            command()
            samples[name].append(time.perf_counter() - start)
            settle()
    return samples


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {done.stderr.decode(errors='replace')}")


def busybox_rootfs(daemon: EssaimDaemon, target: Path) -> None:
    """The same rootfs essaim runs: the layer of its busybox image, unpacked."""
    from essaim.image.busybox import build_busybox_layer

    layer = target.parent / "layer.tar"
    build_busybox_layer(layer)
    target.mkdir()
    with tarfile.open(layer) as tar:
        tar.extractall(target, filter="fully_trusted")


def essaim_config(bundle: Path) -> dict[str, Any]:
    """The config.json essaim writes for `docker run --rm busybox true`: Docker's default
    capabilities, seccomp profile, masked paths; no host files bound in."""
    from essaim.runtime.host import HostFacts
    from essaim.runtime.spec import RunSpec, build_oci_config

    spec = RunSpec(container_id="bench", rootfs=str(bundle / "rootfs"), args=["true"])
    return dict(build_oci_config(spec, HostFacts.read()))


def report(name: str, samples: list[float], base: float | None) -> None:
    median = statistics.median(samples)
    ratio = f"  {median / base:5.2f}x raw runc" if base else ""
    print(f"{name:<32} median {median * 1000:7.1f} ms  (min {min(samples) * 1000:.1f}, "
          f"n={len(samples)}){ratio}")  # fmt: skip


def settle(daemon: EssaimDaemon) -> None:
    """Wait (up to a second) until essaimd has no child process left: work it does after
    answering (a `runc delete`) must not land in the next command's time."""
    assert daemon.proc is not None
    children = Path(f"/proc/{daemon.proc.pid}/task")

    def busy() -> bool:
        return any(task.read_text().strip() for task in children.glob("*/children"))

    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and busy():
        time.sleep(0.001)


DOCKER_SOCKET = Path("/var/run/docker.sock")


def installed_peers() -> list[tuple[str, list[str]]]:
    """Docker (when its daemon has its default socket) and Podman, each with the CLI argv
    that reaches it; one line printed for each that is not here."""
    found = []
    for peer, argv in (("docker (dockerd)", ["docker", "-H", f"unix://{DOCKER_SOCKET}"]),
                       ("podman", ["podman"])):  # fmt: skip
        present = shutil.which(argv[0]) is not None
        if peer.startswith("docker"):
            present = present and DOCKER_SOCKET.exists()
        if present:
            found.append((peer, argv))
        else:
            print(f"{peer + ':':<32} not installed here")
    return found
