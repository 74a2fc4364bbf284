"""Blob push and pull throughput of `essaim registry serve` against Debian's
docker-registry on the same data, in the same run: N MB in a few layers pushed the way
docker and containerd push (POST, one streamed PATCH, PUT ?digest=) and pulled back,
rounds interleaved; median MB/s of each and the ratio. Target: ratio >= 1.

Run after scripts/setup:  .venv/bin/python benchmarks/registry_throughput.py [--mb 100]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import timed
from tests.integration.registries import DockerRegistry, EssaimRegistry, remove

PIECE = 1 << 20


def _pieces(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for i in range(0, len(data), PIECE):
        yield bytes(view[i : i + PIECE])


def push(client: httpx.Client, name: str, layers: list[tuple[str, bytes]]) -> None:
    for digest, data in layers:
        start = client.post(f"/v2/{name}/blobs/uploads/")
        start.raise_for_status()
        patched = client.patch(
            start.headers["Location"],
            content=_pieces(data),
            headers={"Content-Type": "application/octet-stream"},
        )
        patched.raise_for_status()
        location = patched.headers["Location"]
        # docker-registry's Location carries its upload state in the query: keep it.
        joiner = "&" if "?" in location else "?"
        done = client.put(f"{location}{joiner}digest={digest}")
        if done.status_code != 201:
            raise SystemExit(f"push failed: {done.status_code} {done.text}")


def pull(client: httpx.Client, name: str, layers: list[tuple[str, bytes]]) -> None:
    for digest, data in layers:
        size = 0
        with client.stream("GET", f"/v2/{name}/blobs/{digest}") as r:
            r.raise_for_status()
            for chunk in r.iter_raw(PIECE):
                size += len(chunk)
        if size != len(data):
            raise SystemExit(f"pull of {digest}: {size} bytes, expected {len(data)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="megabytes in all")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("-n", "--runs", type=int, default=5)
    args = parser.parse_args()
    size = args.mb * (1 << 20) // args.layers
    layers = []
    for _ in range(args.layers):
        data = os.urandom(size)
        layers.append(("sha256:" + hashlib.sha256(data).hexdigest(), data))
    total_mb = size * args.layers / (1 << 20)
    scratch = Path(tempfile.mkdtemp(prefix="es-bench-registry-", dir="/tmp"))
    try:
        essaim = EssaimRegistry(scratch / "essaim", ["--log-level", "warning"])
        reference = DockerRegistry(scratch / "distribution")
        with essaim, reference:
            clients = {
                "essaim registry": httpx.Client(base_url=essaim.url, timeout=120),
                "docker-registry": httpx.Client(base_url=reference.url, timeout=120),
            }
            commands: dict[str, Callable[[], None]] = {}
            for peer, client in clients.items():
                commands[f"{peer} push"] = lambda c=client: push(c, "bench/img", layers)
                commands[f"{peer} pull"] = lambda c=client: pull(c, "bench/img", layers)
            samples = timed(commands, args.runs, settle=lambda: None)
            for client in clients.values():
                client.close()
    finally:
        remove(scratch)
    print(f"{total_mb:.0f} MB in {args.layers} layers, {args.runs} runs, median MB/s")
    rates = {name: total_mb / statistics.median(times) for name, times in samples.items()}
    for name, rate in rates.items():
        print(f"{name:<24} {rate:8.1f} MB/s")
    for op in ("push", "pull"):
        ratio = rates[f"essaim registry {op}"] / rates[f"docker-registry {op}"]
        print(f"{op}: essaim / docker-registry = {ratio:.2f}")


if __name__ == "__main__":
    main()
