"""HTTP through a published port against the container's own address: requests per
second and latency (wrk, 8 keep-alive connections), from the host to the container's
address (direct), to 127.0.0.1:<port> and, from another network namespace, to the
host's address (both DNAT'd by nftables, every packet), and to Docker's published port
when Docker is installed. Target: published within 10% of direct.

The server is a small asyncio HTTP/1.1 server run by the host's Python inside the
container (busybox httpd closes every connection: a new connection per request runs the
client out of ephemeral ports within seconds, and the figures then measure that).

Run as root after `scripts/setup --test` (which installs wrk):
    .venv/bin/python benchmarks/published_port.py [--seconds 2] [--rounds 9]
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import benchmark_daemon, installed_peers, run
from tests.integration.network_hosts import PeerHost, inside

# The host's Python, bound read-only into the busybox container.
HOST_PYTHON = ["-v", "/usr:/usr:ro", "-v", "/usr/lib:/lib:ro", "-v", "/usr/lib64:/lib64:ro"]
SERVER = """
import asyncio
REPLY = b"HTTP/1.1 200 OK\\r\\nContent-Length: 6\\r\\nContent-Type: text/plain\\r\\n\\r\\nhello\\n"
async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            writer.write(REPLY)
            if b"connection: close" in head.lower():
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(serve, "0.0.0.0", 80, backlog=512)
    await server.serve_forever()
asyncio.run(main())
"""
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wrk(url: str, seconds: int, netns: Path | None = None) -> tuple[float, float]:
    """(requests per second, median latency in seconds)."""
    prefix = inside(netns)
    out = subprocess.run(
        [*prefix, "wrk", "-t1", "-c8", f"-d{seconds}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"50%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return rps, float(value) * UNITS[unit]


def wait_for(url: str, netns: Path | None = None) -> None:
    deadline = time.monotonic() + 10
    while subprocess.run(
        [*inside(netns), "wrk", "-d1s", "-c1", "-t1", url],
        capture_output=True, check=False,
    ).returncode != 0:  # fmt: skip
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} does not answer")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run scripts/setup --test")
    with benchmark_daemon() as (root, daemon):
        env = daemon.env()
        port = free_port()
        # "nat-unprotected": as the default "nat" mode (DNAT, masquerade) but the container
        # also answers other hosts at its own address, the baseline measured here.
        unprotected = "com.docker.network.bridge.gateway_mode_ipv4=nat-unprotected"
        run(["docker", "network", "create", "-o", unprotected, "bench"], env)
        run(["docker", "run", "-d", "--name", "web", "--network", "bench", "-p", f"{port}:80",
             *HOST_PYTHON, "busybox", "python3", "-c", SERVER], env)  # fmt: skip
        address = subprocess.run(
            ["docker", "inspect", "-f", "{{.NetworkSettings.Networks.bench.IPAddress}}", "web"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        peer = PeerHost(root).create()
        try:
            # Each published path beside the direct one from the same place: the other
            # host reaches the container's address through the host's routing too.
            targets = {
                "direct, from the host": (f"http://{address}/", None),
                "published 127.0.0.1": (f"http://127.0.0.1:{port}/", None),
                "direct, from another host": (f"http://{address}/", peer.path),
                "published host address": (f"http://{peer.host_address}:{port}/", peer.path),
            }
            baselines = {
                "published 127.0.0.1": "direct, from the host",
                "published host address": "direct, from another host",
            }
            for url, netns in targets.values():
                wait_for(url, netns)
                wrk(url, 1, netns)  # warm: the first seconds of a target run slow
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
            for _ in range(args.rounds):  # interleaved, so drift weighs on all alike
                for name, (url, netns) in targets.items():
                    results[name].append(wrk(url, args.seconds, netns))
        finally:
            peer.remove()
        rps = {name: statistics.median(r for r, _ in values) for name, values in results.items()}
        for name, values in results.items():
            latency = statistics.median(lat for _, lat in values)
            base = baselines.get(name)
            ratio = f"  {rps[name] / rps[base]:5.2f}x direct" if base else ""
            print(f"{name:<30} {rps[name]:9.0f} req/s  p50 {latency * 1000:6.3f} ms{ratio}")
        direct_rps = rps["direct, from the host"]
        for peer_name, argv in installed_peers():
            peer_port = free_port()
            run([*argv, "run", "-d", "--name", "bench-web", "-p", f"{peer_port}:80", *HOST_PYTHON,
                 "busybox", "python3", "-c", SERVER])  # fmt: skip
            try:
                wait_for(f"http://127.0.0.1:{peer_port}/")
                rps, latency = wrk(f"http://127.0.0.1:{peer_port}/", args.seconds)
                label = f"{peer_name} published"
                print(f"{label:<30} {rps:9.0f} req/s  p50 {latency * 1000:6.2f} ms  "
                      f"{rps / direct_rps:5.2f}x essaim direct")  # fmt: skip
            finally:
                run([*argv, "rm", "-f", "bench-web"])


if __name__ == "__main__":
    main()
