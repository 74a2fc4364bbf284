"""Push and pull of a ~100 MB image of incompressible data to Debian's docker-registry
on loopback: essaimd's times and MB/s, against `skopeo copy` of the same image measured
in the same run (to an OCI directory: download only; and into containers/storage with
the overlay driver: Podman's pull), and against Docker's own pull when a dockerd is
installed.

Run as root: `.venv/bin/python benchmarks/pull_push.py [--mb 100] [--runs 3]`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import DOCKER_SOCKET, benchmark_daemon
from tests.integration.registries import DockerRegistry


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed: {done.stderr.decode(errors='replace')}")
    return elapsed


def line(name: str, samples: list[float], megabytes: float, base: float | None) -> float:
    median = statistics.median(samples)
    ratio = f"  {median / base:5.2f}x essaim pull" if base else ""
    print(f"{name:<34} median {median:6.2f} s  {megabytes / median:7.1f} MB/s  "
          f"(min {min(samples):.2f}, n={len(samples)}){ratio}")  # fmt: skip
    return median


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with benchmark_daemon() as (root, daemon), DockerRegistry(root / "registry") as registry:
        ref = f"{registry.address}/bench:v1"
        size = args.mb * 1_000_000
        make = f"head -c {size} /dev/urandom > /data"
        for argv in (["run", "--name", "big", "busybox", "sh", "-c", make],
                     ["commit", "big", ref], ["rm", "big"]):  # fmt: skip
            if daemon.docker(*argv, timeout=600).returncode != 0:
                raise SystemExit(f"docker {argv[0]} failed")
        megabytes = size / 1e6
        env = daemon.env()
        # The first push gzips the layer into the content store (dockerd compresses
        # on every push); later pushes of the same image find the registry has it.
        first_push = timed(["docker", "push", ref], env)
        print(f"{'essaim push (gzip + upload)':<34} {first_push:6.2f} s  "
              f"{megabytes / first_push:7.1f} MB/s")  # fmt: skip
        pulls: list[float] = []
        for _ in range(args.runs):
            daemon.docker("rmi", ref)
            daemon.stop()  # the start-up sweep drops the blobs no image uses
            daemon.start()
            pulls.append(timed(["docker", "pull", ref], env))
        base = line("essaim pull (docker CLI)", pulls, megabytes, None)
        skopeo: list[float] = []
        for i in range(args.runs):
            target = root / f"oci-{i}"
            copy = ["skopeo", "copy", "--src-tls-verify=false"]
            skopeo.append(timed([*copy, f"docker://{ref}", f"oci:{target}:bench"]))
            shutil.rmtree(target, ignore_errors=True)
        line("skopeo copy docker:// -> oci:", skopeo, megabytes, base)
        # Podman's pull is this very code path (containers/image into containers/storage
        # with its overlay driver): download, verify and unpack, as essaim's pull does.
        podman_like: list[float] = []
        for i in range(args.runs):
            graph, run = root / f"cs-{i}" / "graph", root / f"cs-{i}" / "run"
            target = f"containers-storage:[overlay@{graph}+{run}]bench:v1"
            copy = ["skopeo", "copy", "--src-tls-verify=false"]
            try:
                podman_like.append(timed([*copy, f"docker://{ref}", target]))
            finally:
                # containers/storage bind-mounts its overlay directory onto itself.
                subprocess.run(["umount", str(graph / "overlay")], capture_output=True)
                shutil.rmtree(root / f"cs-{i}", ignore_errors=True)
        line("skopeo -> containers-storage", podman_like, megabytes, base)
        if shutil.which("docker") and DOCKER_SOCKET.exists():
            host = ["docker", "-H", f"unix://{DOCKER_SOCKET}"]
            docker_pulls = []
            for _ in range(args.runs):
                subprocess.run([*host, "rmi", ref], capture_output=True, check=False)
                docker_pulls.append(timed([*host, "pull", ref]))
            line("docker (dockerd) pull", docker_pulls, megabytes, base)
        else:
            print(f"{'docker (dockerd) pull:':<34} not installed here")


if __name__ == "__main__":
    main()
