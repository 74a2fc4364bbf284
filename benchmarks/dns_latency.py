"""Per-query latency of the embedded DNS server: a container name it answers itself, and
names it forwards (to a resolver on the host's loopback, and to one behind the sandbox's
veth), each beside the same query sent straight to that resolver (the ratio).

Run as root after scripts/setup:  .venv/bin/python benchmarks/dns_latency.py [-n 2000]
The client is a process of its own inside the sandbox's namespace, as a container's is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dns.message
import dns.query
from pyroute2 import IPRoute
from tests.dns_upstream import UpstreamServer, bound_pair, link_namespaces

from essaim.network.dns.names import DnsRecord, NameTable
from essaim.network.dns.server import EmbeddedDns, Upstream
from essaim.network.netns import NamespaceFiles, run_in_netns

T = TypeVar("T")
NETWORK = secrets.token_hex(32)
SUBNET = "10.213.251"


def client(where: str, port: int, name: str, runs: int) -> None:
    """The client side (own process): `runs` queries one after another, seconds each."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    samples = []
    for _ in range(runs + runs // 10):  # the first tenth warms up, untimed
        query = dns.message.make_query(name, "A")
        start = time.perf_counter()
        response = dns.query.udp(query, where, port=port, timeout=5, sock=sock)
        samples.append(time.perf_counter() - start)
        assert response.answer, response
    print(json.dumps(samples[runs // 10 :]))


def measure(netns: Path | None, where: str, port: int, name: str, runs: int) -> list[float]:
    enter = [] if netns is None else ["nsenter", f"--net={netns}"]
    argv = [*enter, sys.executable, __file__, "--client", where, str(port), name, str(runs)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    samples: list[float] = json.loads(done.stdout)
    return samples


def line(label: str, samples: list[float], base: list[float] | None = None) -> None:
    median = statistics.median(samples)
    p99 = statistics.quantiles(samples, n=100)[98]
    ratio = f"  {median / statistics.median(base):5.2f}x direct" if base else ""
    print(f"{label:<44} median {median * 1e6:7.0f} us  p99 {p99 * 1e6:7.0f} us{ratio}")


def veth_upstream(sandbox: Path, other: Path) -> IPv4Address:
    """A veth pair between the two namespaces; the upstream's address on the far side."""
    link_namespaces(sandbox, other, IPv4Address(f"{SUBNET}.1"), IPv4Address(f"{SUBNET}.2"))
    return IPv4Address(f"{SUBNET}.2")


def lo_up() -> None:
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--runs", type=int, default=2000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    root = Path(tempfile.mkdtemp(prefix="es-bench-dns-", dir="/tmp"))
    spaces = NamespaceFiles(root)
    spaces.prepare()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def call(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    names = NameTable()
    server = EmbeddedDns(names)
    upstreams: list[UpstreamServer] = []
    try:
        sandbox, other = spaces.create("sandbox"), spaces.create("upstream")
        run_in_netns(sandbox, lo_up)
        run_in_netns(other, lo_up)
        far = veth_upstream(sandbox, other)
        names.set_endpoint(
            DnsRecord(NETWORK, "bench", "c" * 64, ("c1",), IPv4Address(f"{SUBNET}.3"))
        )
        host_sockets = bound_pair("127.0.0.1")
        host_port = host_sockets[0].getsockname()[1]
        behind_sockets = run_in_netns(other, lambda: bound_pair(str(far), 53))
        for sockets, name in ((host_sockets, "host.test"), (behind_sockets, "veth.test")):
            upstreams.append(UpstreamServer({name: [f"{SUBNET}.9"]}))
            call(upstreams[-1].start(*sockets))
        host = Upstream(IPv4Address("127.0.0.1"), host_port, from_host=True)
        call(server.attach("bench", sandbox, [NETWORK], [Upstream(far), host]))
        runs = args.runs
        print(f"embedded DNS, {runs} sequential UDP queries each, client in the sandbox")
        line(
            "container name (answered by the server)",
            measure(sandbox, "127.0.0.11", 53, "c1", runs),
        )
        direct = measure(sandbox, str(far), 53, "veth.test", runs)
        line("direct: resolver behind the veth", direct)
        line(
            "forwarded: resolver behind the veth",
            measure(sandbox, "127.0.0.11", 53, "veth.test", runs),
            direct,
        )
        call(server.attach("bench", sandbox, [NETWORK], [host]))
        direct = measure(None, "127.0.0.1", host_port, "host.test", runs)
        line("direct: resolver on the host's loopback", direct)
        line(
            "forwarded: host loopback (from_host)",
            measure(sandbox, "127.0.0.11", 53, "host.test", runs),
            direct,
        )
    finally:
        call(server.close())
        for upstream in upstreams:
            call(upstream.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        for name in spaces.names():
            spaces.remove(name)
        subprocess.run(["umount", str(root)], check=False)
        root.rmdir()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    else:
        main()
