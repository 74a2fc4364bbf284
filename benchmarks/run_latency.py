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


def timed(command: Callable[[], None], runs: int) -> list[float]:
    command()  # warm caches (page cache, first exec of each binary)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        command()
        samples.append(time.perf_counter() - start)
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
    daemon = EssaimDaemon(root / "essaim")
    try:
        daemon.seed_busybox()
        daemon.start()
        bundle = root / "bundle"
        bundle.mkdir()
        busybox_rootfs(daemon, bundle / "rootfs")
        default_samples = timed(
            raw_runc(bundle, daemon.cgroup_parent, runc_default_config(bundle)), args.runs
        )
        same_samples = timed(
            raw_runc(bundle, daemon.cgroup_parent, essaim_config(bundle)), args.runs
        )
        base = statistics.median(default_samples)
        report("raw runc run (runc spec)", default_samples, None)
        report("raw runc run (essaim's config)", same_samples, base)
        env = daemon.env()
        essaim = timed(lambda: run(["docker", "run", "--rm", "busybox", "true"], env), args.runs)
        report("essaim: docker run --rm", essaim, base)
        for peer, argv in (("docker (dockerd)", ["docker", "-H", "unix:///var/run/docker.sock"]),
                           ("podman", ["podman"])):  # fmt: skip
            if shutil.which(argv[0]) is None or (
                peer.startswith("docker") and not Path("/var/run/docker.sock").exists()
            ):
                print(f"{peer:<32} not installed here")
                continue
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
            samples = timed(lambda a=peer_run: run(a), args.runs)  # type: ignore[misc]
            report(f"{peer}: run --rm", samples, base)
        same = statistics.median(same_samples)
        print(f"essaim / raw runc (runc spec) = {statistics.median(essaim) / base:.2f}"
              " (target <= 3.00)")  # fmt: skip
        print(f"essaim / raw runc (same config, seccomp included) = "
              f"{statistics.median(essaim) / same:.2f}")  # fmt: skip
    finally:
        daemon.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
