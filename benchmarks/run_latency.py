"""`docker run --rm busybox true` through essaimd against raw `runc run` of the same
rootfs, median of N runs each in one session, printed as a ratio; Docker and Podman
figures beside them when they are installed. Target: essaim at most 3x raw runc.

Run as root after scripts/setup:  .venv/bin/python benchmarks/run_latency.py [-n 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.daemon import EssaimDaemon


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


def raw_runc(bundle: Path, cgroup_parent: str, config: dict[str, Any]) -> Callable[[], None]:
    """`runc run` of `config` (the rootfs in `bundle`), a fresh cgroup and id each time."""
    config_path = bundle / "config.json"
    counter = iter(range(1_000_000))

    def once() -> None:
        n = next(counter)
        config["linux"]["cgroupsPath"] = f"/{cgroup_parent}/raw-{n}"
        config_path.write_text(json.dumps(config))
        run(["runc", "--root", str(bundle.parent / "runc"), "run", "--bundle", str(bundle),
             f"bench-{os.getpid()}-{n}"])  # fmt: skip

    return once


def settle(daemon: EssaimDaemon) -> None:
    """Wait (up to a second) until no runtime holds state for any container and essaimd
    has no child process (a `runc delete` still exiting) left."""
    assert daemon.proc is not None
    children = Path(f"/proc/{daemon.proc.pid}/task")
    runtime_states = daemon.exec_root / "runtimes"

    def busy() -> bool:
        if any(runtime_states.glob("*/*")):
            return True
        return any(task.read_text().strip() for task in children.glob("*/children"))

    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and busy():
        time.sleep(0.001)


def runc_default_config(bundle: Path) -> dict[str, Any]:
    """`runc spec`'s example: no seccomp, no masked paths beyond runc's own."""
    run(["runc", "spec", "--bundle", str(bundle)])
    config: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["true"]
    return config


def essaim_config(bundle: Path) -> dict[str, Any]:
    """The config.json essaim writes for `docker run --rm busybox true`: Docker's default
    capabilities, seccomp profile, masked paths; no host files bound in."""
    from essaim.runtime.host import HostFacts
    from essaim.runtime.spec import RunSpec, build_oci_config

    spec = RunSpec(container_id="bench", rootfs=str(bundle / "rootfs"), args=["true"])
    return dict(build_oci_config(spec, HostFacts.read()))


RUNC_SPEC = "raw runc run (runc spec)"
RUNC_SAME = "raw runc run (essaim's config)"
ESSAIM = "essaim: docker run --rm"


def report(name: str, samples: list[float], base: float | None) -> None:
    median = statistics.median(samples)
    ratio = f"  {median / base:5.2f}x raw runc" if base else ""
    print(f"{name:<32} median {median * 1000:7.1f} ms  (min {min(samples) * 1000:.1f}, "
          f"n={len(samples)}){ratio}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--runs", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    root = Path(tempfile.mkdtemp(prefix="es-bench-", dir="/tmp"))
    # The level essaimd runs at by default: a debug log would be measured too.
    daemon = EssaimDaemon(root / "essaim", log_level="info")
    try:
        daemon.seed_busybox()
        daemon.start()
        bundle = root / "bundle"
        bundle.mkdir()
        busybox_rootfs(daemon, bundle / "rootfs")
        env = daemon.env()
        commands: dict[str, Callable[[], None]] = {
            RUNC_SPEC: raw_runc(bundle, daemon.cgroup_parent, runc_default_config(bundle)),
            RUNC_SAME: raw_runc(bundle, daemon.cgroup_parent, essaim_config(bundle)),
            ESSAIM: lambda: run(["docker", "run", "--rm", "busybox", "true"], env),
        }
        for peer, argv in (("docker (dockerd)", ["docker", "-H", "unix:///var/run/docker.sock"]),
                           ("podman", ["podman"])):  # fmt: skip
            if shutil.which(argv[0]) is None or (
                peer.startswith("docker") and not Path("/var/run/docker.sock").exists()
            ):
                print(f"{peer + ':':<32} not installed here")
                continue
            # essaim's default network is still a bare namespace: compare without a bridge.
            peer_run = [
                *argv,
                "run",
                "--rm",
                "--pull=never",
                "--network",
                "none",
                "busybox",
                "true",
            ]
            commands[f"{peer}: run --rm"] = lambda a=peer_run: run(a)  # type: ignore[misc]
        # Untimed after each command: what essaimd does after answering (deleting the
        # runtime's state) must not land in the next command's time.
        samples = timed(commands, args.runs, settle=lambda: settle(daemon))
        base = statistics.median(samples[RUNC_SPEC])
        for name, taken in samples.items():
            report(name, taken, None if name == RUNC_SPEC else base)
        essaim = statistics.median(samples[ESSAIM])
        print(f"essaim / raw runc (runc spec) = {essaim / base:.2f} (target <= 3.00)")
        same = statistics.median(samples[RUNC_SAME])
        print(f"essaim / raw runc (same config, seccomp included) = {essaim / same:.2f}")
    finally:
        daemon.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
