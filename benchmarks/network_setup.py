"""What network setup adds to `docker run --rm busybox true`: the same run on the host's
network (no namespace of ours), on `none` (a bare namespace), on the default bridge and on a
user network (endpoint, address, DNS), medians of N interleaved runs. Target: the bridge
and user network within 50 ms of the host-network run.

Run as root after scripts/setup:  .venv/bin/python benchmarks/network_setup.py [-n 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import benchmark_daemon, installed_peers, report, run, settle, timed

NETWORKS = ("host", "none", "bridge", "bench-net")


def runner(argv: list[str], env: dict[str, str] | None = None) -> Callable[[], None]:
    return lambda: run(argv, env)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--runs", type=int, default=30)
    args = parser.parse_args()
    with benchmark_daemon() as (_, daemon):
        env = daemon.env()
        run(["docker", "network", "create", "bench-net"], env)
        commands = {
            f"essaim --network {net}": runner(
                ["docker", "run", "--rm", "--network", net, "busybox", "true"], env
            )
            for net in NETWORKS
        }
        samples = timed(commands, args.runs, lambda: settle(daemon))
        base = statistics.median(samples["essaim --network host"])
        for name, values in samples.items():
            report(name, values, None)
        for net in NETWORKS[1:]:
            added = statistics.median(samples[f"essaim --network {net}"]) - base
            verdict = "ok" if added < 0.050 else "over the 50 ms target"
            print(f"setup added by --network {net:<10} {added * 1000:6.1f} ms  ({verdict})")
        for peer, argv in installed_peers():
            peer_commands = {
                net: runner([*argv, "run", "--rm", "--network", net, "busybox", "true"])
                for net in ("host", "bridge")
            }
            peer_samples = timed(peer_commands, args.runs, lambda: None)
            added = statistics.median(peer_samples["bridge"]) - statistics.median(
                peer_samples["host"]
            )
            print(f"{peer}: setup added by --network bridge {added * 1000:6.1f} ms")
        run(["docker", "network", "rm", "bench-net"], env)


if __name__ == "__main__":
    main()
