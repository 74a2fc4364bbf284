"""Many containers on one essaimd: the time to start N `sleep` containers, essaimd's RSS
and the memory each container costs beyond its own process (its conmon and the daemon's
growth), then `docker ps` with them running; Docker and Podman beside it when installed.
Target: per-container overhead below Docker's containerd shim.

Run as root after scripts/setup:  .venv/bin/python benchmarks/scale.py [-n 200] [--ps-runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import benchmark_daemon, installed_peers, run
from tests.integration.daemon import EssaimDaemon


def rss_kib(pid: int) -> int:
    """Resident memory of one process (proportional share of shared pages, from smaps)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def conmon_pids(daemon: EssaimDaemon) -> list[int]:
    out = []
    for pidfile in (daemon.data_root / "containers").glob("*/conmon.pid"):
        try:
            out.append(int(pidfile.read_text().strip()))
        except (OSError, ValueError):
            continue
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--containers", type=int, default=200)
    parser.add_argument("--ps-runs", type=int, default=20)
    args = parser.parse_args()
    with benchmark_daemon() as (_, daemon):
        try:
            assert daemon.proc is not None
            env = daemon.env()
            run(["docker", "run", "--rm", "busybox", "true"], env)  # warm caches
            before = rss_kib(daemon.proc.pid)
            started = time.perf_counter()
            for _ in range(args.containers):
                run(["docker", "run", "-d", "busybox", "sleep", "100000"], env)
            elapsed = time.perf_counter() - started
            after = rss_kib(daemon.proc.pid)
            conmons = [rss_kib(pid) for pid in conmon_pids(daemon)]
            n = args.containers
            print(f"start {n} sleep containers: {elapsed:.1f} s ({elapsed / n * 1000:.0f} ms each)")
            print(f"essaimd PSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after")
            per_daemon = (after - before) / n
            per_conmon = statistics.mean(conmons) if conmons else 0.0
            print(f"per container: conmon {per_conmon:.0f} KiB + essaimd {per_daemon:.0f} KiB"
                  f" = {(per_conmon + per_daemon) / 1024:.2f} MiB")  # fmt: skip
            samples = []
            for _ in range(args.ps_runs):
                begin = time.perf_counter()
                run(["docker", "ps", "-q"], env)
                samples.append(time.perf_counter() - begin)
            print(f"docker ps with {n} running: median {statistics.median(samples) * 1000:.1f} ms")
            for peer, _ in installed_peers():
                print(f"{peer}: installed, but this benchmark does not measure it yet")
        finally:
            subprocess.run(["docker", "rm", "-f", *daemon.docker("ps", "-aq").stdout.split()],
                           env=daemon.env(), capture_output=True, check=False)  # fmt: skip


if __name__ == "__main__":
    main()
