"""`docker exec c true` through essaimd against raw `runc exec` into a container runc runs
from the same rootfs and config, interleaved, medians printed as a ratio; Docker and
Podman figures beside them when they are installed. Target: essaim at most 3x raw runc.

Run as root after scripts/setup:  .venv/bin/python benchmarks/exec_latency.py [-n 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

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

RUNC = "raw runc exec"
ESSAIM = "essaim: docker exec"


def raw_runc_container(bundle: Path, cgroup_parent: str) -> tuple[str, str]:
    """A `sleep` container run detached by runc itself; its runc root and id."""
    config = essaim_config(bundle)
    config["process"]["args"] = ["sleep", "100000"]
    config["linux"]["cgroupsPath"] = f"/{cgroup_parent}/raw-exec"
    (bundle / "config.json").write_text(json.dumps(config))
    root, cid = str(bundle.parent / "runc"), f"bench-exec-{os.getpid()}"
    subprocess.run(
        ["runc", "--root", root, "run", "--detach", "--bundle", str(bundle), cid],
        check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return root, cid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--runs", type=int, default=30)
    args = parser.parse_args()
    runc_root = cid = ""
    with benchmark_daemon() as (root, daemon):
        try:
            bundle = root / "bundle"
            bundle.mkdir()
            busybox_rootfs(daemon, bundle / "rootfs")
            runc_root, cid = raw_runc_container(bundle, daemon.cgroup_parent)
            env = daemon.env()
            run(["docker", "run", "-d", "--name", "bench", "busybox", "sleep", "100000"], env)
            commands: dict[str, Callable[[], None]] = {
                RUNC: lambda: run(["runc", "--root", runc_root, "exec", cid, "true"]),
                ESSAIM: lambda: run(["docker", "exec", "bench", "true"], env),
            }
            for peer, argv in installed_peers():
                name = f"essaim-bench-{os.getpid()}"
                run([*argv, "run", "-d", "--pull=never", "--name", name, "busybox", "sleep", "1h"])
                commands[f"{peer}: exec"] = lambda a=argv, n=name: run([*a, "exec", n, "true"])  # type: ignore[misc]
            samples = timed(commands, args.runs, settle=lambda: settle(daemon))
            base = statistics.median(samples[RUNC])
            for name, taken in samples.items():
                report(name, taken, None if name == RUNC else base)
            essaim = statistics.median(samples[ESSAIM])
            print(f"essaim / raw runc exec = {essaim / base:.2f} (target <= 3.00)")
        finally:
            if cid:
                subprocess.run(["runc", "--root", runc_root, "delete", "--force", cid], check=False)


if __name__ == "__main__":
    main()
