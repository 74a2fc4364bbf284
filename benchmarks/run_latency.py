"""`docker run --rm busybox true` through essaimd against raw `runc run` of the same
rootfs, median of N runs each in one session, printed as a ratio; Docker and Podman
figures beside them when they are installed. Target: essaim at most 3x raw runc.

Run as root after scripts/setup:  .venv/bin/python benchmarks/run_latency.py [-n 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (
    benchmark_daemon,
    busybox_rootfs,
    essaim_config,
    installed_peers,
    report,
    run,
    settle,
    timed,
)


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


RUNC_SPEC = "raw runc run (runc spec)"
RUNC_SAME = "raw runc run (essaim's config)"
ESSAIM = "essaim: docker run --rm"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--runs", type=int, default=20)
    args = parser.parse_args()
    with benchmark_daemon() as (root, daemon):
        bundle = root / "bundle"
        bundle.mkdir()
        busybox_rootfs(daemon, bundle / "rootfs")
        env = daemon.env()
        commands: dict[str, Callable[[], None]] = {
            RUNC_SPEC: raw_runc(bundle, daemon.cgroup_parent, runc_default_config(bundle)),
            RUNC_SAME: raw_runc(bundle, daemon.cgroup_parent, essaim_config(bundle)),
            ESSAIM: lambda: run(["docker", "run", "--rm", "busybox", "true"], env),
        }
        for peer, argv in installed_peers():
            # Both on their default bridge, as a user's `docker run` is.
            peer_run = [*argv, "run", "--rm", "--pull=never", "busybox", "true"]
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


if __name__ == "__main__":
    main()
