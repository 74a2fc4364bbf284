"""Firewall.apply() with 50 published ports on 5 bridges: a whole replacement (the render
and one libnftables transaction) and the common case of one more port (map elements
added), against the floor of any apply: a transaction that changes nothing.
No daemon needed; run as root after scripts/setup:

    .venv/bin/python benchmarks/firewall_apply.py [-n 30] [--ports 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from essaim.network.firewall.model import BridgeRules, FirewallState, PublishedPort
from essaim.network.firewall.nft import Firewall, run_nft
from essaim.network.firewall.rules import render


def state(ports: int, shift: int) -> FirewallState:
    """`ports` published ports spread over 5 bridges; `shift` moves the host ports, so two
    states in turn make every apply a real change."""
    bridges = tuple(
        BridgeRules(f"esbench{i}", IPv4Network(f"10.213.{200 + i}.0/24"), icc=i != 0)
        for i in range(5)
    )
    published = tuple(
        PublishedPort(
            "tcp" if n % 3 else "udp",
            None if n % 4 else IPv4Address("127.0.0.1"),
            40000 + n + shift,
            IPv4Address(f"10.213.{200 + n % 5}.{2 + n // 5}"),
            80,
            f"esbench{n % 5}",
        )
        for n in range(ports)
    )
    return FirewallState(bridges, published)


async def main(runs: int, ports: int) -> None:
    table = f"es{secrets.token_hex(4)}"
    firewall = Firewall(table)
    states = [state(ports, 0), state(ports, 1000)]
    applies: list[float] = []
    additions: list[float] = []
    floors: list[float] = []
    renders: list[float] = []
    try:
        await firewall.apply(states[1])  # warm: nft's first run, the kernel's modules
        for i in range(runs):
            start = time.perf_counter()
            await firewall.apply(states[i % 2])
            applies.append(time.perf_counter() - start)
            more = states[i % 2]
            more = FirewallState(more.bridges, (*more.ports, replace(more.ports[0], host_port=100)))
            start = time.perf_counter()
            await firewall.apply(more)
            additions.append(time.perf_counter() - start)
            start = time.perf_counter()
            await run_nft(f"table ip {table}\n")  # declares what exists: changes nothing
            floors.append(time.perf_counter() - start)
            start = time.perf_counter()
            render(table, states[i % 2])
            renders.append(time.perf_counter() - start)
    finally:
        await firewall.remove()
    floor = statistics.median(floors)
    for name, samples in (
        (f"apply() replacing {ports} ports", applies),
        ("apply() of one port more", additions),
        ("a no-op transaction", floors),
        ("render() alone", renders),
    ):
        median = statistics.median(samples)
        print(
            f"{name:<32} median {median * 1000:7.2f} ms  (min {min(samples) * 1000:.2f}, "
            f"n={len(samples)})  {median / floor:5.2f}x a no-op"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30)
    parser.add_argument("--ports", type=int, default=50)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    asyncio.run(main(args.n, args.ports))
