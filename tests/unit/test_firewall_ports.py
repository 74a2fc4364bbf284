"""Host port reservation for published ports: dockerd's allocator (exact ports, ranges,
ephemeral ports taken in turn) and its error texts, against real sockets on this host."""

from __future__ import annotations

import random
import socket
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from essaim.errors import InvalidParameter, SystemError_
from essaim.network.firewall.ports import HostPorts, read_ephemeral_range

pytestmark = pytest.mark.unit

LOCAL = IPv4Address("127.0.0.1")
TARGET = (IPv4Address("10.213.0.2"), 80)
ALLOCATED = "port is already allocated"


def _bindable(base: int, count: int) -> bool:
    for port in range(base, base + count):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as probe:
                try:
                    probe.bind(("0.0.0.0", port))
                except OSError:
                    return False
    return True


@pytest.fixture
def block() -> int:
    """The first of 8 consecutive ports free now, below the kernel's ephemeral range so
    that no outgoing connection of another process takes one meanwhile."""
    for _ in range(200):
        base = random.randrange(20000, 30000)
        if _bindable(base, 8):
            return base
    pytest.skip("no block of free ports found")


@pytest.fixture
def ports() -> HostPorts:
    return HostPorts()


def _listen(host: str, port: int) -> socket.socket:
    other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    other.bind((host, port))
    other.listen()
    return other


def test_exact_port_taken_twice_is_already_allocated(ports: HostPorts, block: int) -> None:
    held = ports.reserve("tcp", None, block)
    try:
        with pytest.raises(SystemError_) as refused:
            ports.reserve("tcp", None, block)
        assert (
            refused.value.message == f"Bind for 0.0.0.0:{block} failed: port is already allocated"
        )
        with pytest.raises(SystemError_) as refused:
            ports.reserve("tcp", IPv4Address("0.0.0.0"), block)
        assert (
            refused.value.message == f"Bind for 0.0.0.0:{block} failed: port is already allocated"
        )
    finally:
        ports.release(held)


def test_same_port_on_one_address_is_already_allocated(ports: HostPorts, block: int) -> None:
    held = ports.reserve("udp", LOCAL, block)
    try:
        with pytest.raises(SystemError_) as refused:
            ports.reserve("udp", LOCAL, block)
        assert (
            refused.value.message == f"Bind for 127.0.0.1:{block} failed: port is already allocated"
        )
    finally:
        ports.release(held)


def test_tcp_and_udp_ports_are_separate(ports: HostPorts, block: int) -> None:
    tcp = ports.reserve("tcp", None, block)
    udp = ports.reserve("udp", None, block)
    assert (tcp.host_port, udp.host_port) == (block, block)
    ports.release(tcp)
    ports.release(udp)


def test_reserved_port_is_held_against_other_processes(ports: HostPorts, block: int) -> None:
    held = ports.reserve("tcp", None, block)
    with pytest.raises(OSError), _listen("127.0.0.1", block):
        pass
    ports.release(held)
    with _listen("127.0.0.1", block):
        pass  # free again once released


def test_reserved_udp_port_is_held_against_other_processes(ports: HostPorts, block: int) -> None:
    held = ports.reserve("udp", None, block)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        with pytest.raises(OSError):
            other.bind(("127.0.0.1", block))
        ports.release(held)
        other.bind(("127.0.0.1", block))


def test_port_held_by_another_process_is_address_already_in_use(
    ports: HostPorts, block: int
) -> None:
    with _listen("127.0.0.1", block):
        with pytest.raises(SystemError_) as refused:
            ports.reserve("tcp", LOCAL, block, target=TARGET)
        assert refused.value.message == (
            f"failed to bind host port for 127.0.0.1:{block}:10.213.0.2:80/tcp: "
            "address already in use"
        )
        with pytest.raises(SystemError_) as refused:
            ports.reserve("tcp", None, block, target=TARGET)
        assert refused.value.message == (
            f"failed to bind host port for 0.0.0.0:{block}:10.213.0.2:80/tcp: "
            "address already in use"
        )


def test_every_address_and_one_address_of_the_same_port_conflict(
    ports: HostPorts, block: int
) -> None:
    """dockerd's allocator keeps each address apart; the kernel refuses the overlap."""
    for proto in ("tcp", "udp"):
        held = ports.reserve(proto, None, block)
        with pytest.raises(SystemError_) as refused:
            ports.reserve(proto, LOCAL, block, target=TARGET)
        assert refused.value.message == (
            f"failed to bind host port for 127.0.0.1:{block}:10.213.0.2:80/{proto}: "
            "address already in use"
        )
        ports.release(held)


def test_released_port_can_be_reserved_again(ports: HostPorts, block: int) -> None:
    first = ports.reserve("tcp", None, block)
    ports.release(first)
    ports.release(first)  # twice: harmless
    again = ports.reserve("tcp", None, block)
    ports.release(first)  # a stale release must not free the new holder's port
    with pytest.raises(SystemError_, match="port is already allocated"):
        ports.reserve("tcp", None, block)
    ports.release(again)


def test_ephemeral_ports_are_given_in_turn_and_wrap(block: int) -> None:
    ports = HostPorts(ephemeral=(block, block + 3))
    given = [ports.reserve("tcp", None, 0) for _ in range(4)]
    assert [r.host_port for r in given] == [block, block + 1, block + 2, block + 3]
    with pytest.raises(SystemError_) as refused:
        ports.reserve("tcp", None, 0)
    assert refused.value.message == "all ports are allocated"
    ports.release(given[1])
    ports.release(given[0])
    # The next free one after the last given (block + 3): wrapping to the range's start.
    nxt = ports.reserve("tcp", None, 0)
    assert nxt.host_port == block
    after = ports.reserve("tcp", None, 0)
    assert after.host_port == block + 1
    for reservation in (*given[2:], nxt, after):
        ports.release(reservation)


def test_ephemeral_port_released_is_not_given_again_at_once(block: int) -> None:
    ports = HostPorts(ephemeral=(block, block + 7))
    first = ports.reserve("udp", None, 0)
    ports.release(first)
    second = ports.reserve("udp", None, 0)
    assert second.host_port == block + 1  # after the last given, not the lowest free
    ports.release(second)


def test_ephemeral_port_skips_one_another_process_holds(block: int) -> None:
    ports = HostPorts(ephemeral=(block, block + 3))
    with _listen("0.0.0.0", block):
        given = ports.reserve("tcp", None, 0)
    assert given.host_port == block + 1
    ports.release(given)


def test_ephemeral_range_held_elsewhere_fails_with_dockers_words(block: int) -> None:
    ports = HostPorts(ephemeral=(block, block + 1))
    with (
        _listen("0.0.0.0", block),
        _listen("0.0.0.0", block + 1),
        pytest.raises(SystemError_) as refused,
    ):
        ports.reserve("tcp", None, 0, target=TARGET)
    assert refused.value.message == (
        "failed to bind host port for 0.0.0.0::10.213.0.2:80/tcp: address already in use"
    )


def test_range_gives_the_first_free_port_in_it(ports: HostPorts, block: int) -> None:
    first = ports.reserve("tcp", None, block, end=block + 2)
    second = ports.reserve("tcp", None, block, end=block + 2)
    third = ports.reserve("tcp", None, block, end=block + 2)
    assert [first.host_port, second.host_port, third.host_port] == [block, block + 1, block + 2]
    with pytest.raises(SystemError_, match=r"^all ports are allocated$"):
        ports.reserve("tcp", None, block, end=block + 2)
    for reservation in (first, second, third):
        ports.release(reservation)


def test_range_skips_an_exact_port_already_ours(ports: HostPorts, block: int) -> None:
    exact = ports.reserve("tcp", None, block)
    ranged = ports.reserve("tcp", None, block, end=block + 1)
    assert ranged.host_port == block + 1
    ports.release(exact)
    ports.release(ranged)


def test_range_held_elsewhere_names_the_port_tried(ports: HostPorts, block: int) -> None:
    with (
        _listen("0.0.0.0", block),
        _listen("0.0.0.0", block + 1),
        pytest.raises(SystemError_) as refused,
    ):
        ports.reserve("tcp", None, block, end=block + 1, target=TARGET)
    # Ten attempts, taking the two ports in turn: the last one tried was the second.
    assert refused.value.message == (
        f"failed to bind host port {block + 1} for 0.0.0.0:{block}-{block + 1}:"
        "10.213.0.2:80/tcp: address already in use"
    )


def test_address_not_on_this_host_cannot_be_bound(ports: HostPorts, block: int) -> None:
    with pytest.raises(SystemError_) as refused:
        ports.reserve("tcp", IPv4Address("192.0.2.1"), block, target=TARGET)
    assert refused.value.message == (
        f"failed to bind host port for 192.0.2.1:{block}:10.213.0.2:80/tcp: "
        "cannot assign requested address"
    )


def test_bad_requests_are_invalid_parameters(ports: HostPorts) -> None:
    with pytest.raises(InvalidParameter, match=r"^unknown protocol$"):
        ports.reserve("icmp", None, 80)
    with pytest.raises(InvalidParameter, match=r"^invalid port range: 9-8$"):
        ports.reserve("tcp", None, 9, end=8)
    with pytest.raises(InvalidParameter, match=r"^invalid port range: 70000-70000$"):
        ports.reserve("tcp", None, 70000)


def test_ephemeral_range_is_the_kernels(tmp_path: Path) -> None:
    begin, end = (
        int(w) for w in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    )
    assert HostPorts().ephemeral == (begin, end)
    unreadable = tmp_path / "missing"
    assert read_ephemeral_range(unreadable) == (49153, 65535)  # dockerd's fallback
