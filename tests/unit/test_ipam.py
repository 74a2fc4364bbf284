"""IPAM: subnets from the default pools around what is taken, user pools checked with
dockerd's words, addresses handed out serially and given back."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from essaim.errors import Forbidden, InvalidParameter, Unavailable
from essaim.network.ipam import (
    DEFAULT_POOLS,
    AddressPool,
    AddressSpace,
    check_no_overlap,
    choose_subnet,
    host_routes,
    parse_address_pool,
    settle_pool,
)

pytestmark = pytest.mark.unit
Net = ipaddress.IPv4Network


def test_default_pools_start_where_dockerd_starts() -> None:
    assert choose_subnet(DEFAULT_POOLS, []) == Net("172.17.0.0/16")
    taken = [Net("172.17.0.0/16"), Net("172.18.5.0/24")]
    assert choose_subnet(DEFAULT_POOLS, taken) == Net("172.19.0.0/16")


def test_exhausted_pools_say_so() -> None:
    pool = AddressPool(Net("10.9.0.0/23"), 24)
    with pytest.raises(Unavailable, match="non-overlapping IPv4 address pool"):
        choose_subnet([pool], [Net("10.9.0.0/24"), Net("10.9.1.0/24")])


def test_address_pool_flag() -> None:
    assert parse_address_pool("base=10.10.0.0/16,size=24") == AddressPool(Net("10.10.0.0/16"), 24)
    for bad in ("size=24", "base=10.10.0.0/16,size=8", "base=nonsense,size=24"):
        with pytest.raises(InvalidParameter):
            parse_address_pool(bad)


def test_overlap_is_refused_in_dockers_words() -> None:
    with pytest.raises(Forbidden, match="Pool overlaps with other one on this address space"):
        check_no_overlap(Net("10.0.0.0/25"), [Net("10.0.0.0/24")])
    check_no_overlap(Net("10.0.1.0/24"), [Net("10.0.0.0/24")])


def test_settled_pool_defaults_its_gateway_and_checks_the_rest() -> None:
    pool = settle_pool("10.3.0.0/24")
    assert (pool.subnet, pool.gateway) == ("10.3.0.0/24", "10.3.0.1")
    with pytest.raises(Forbidden, match=r"no matching subnet for gateway 10\.4\.0\.1"):
        settle_pool("10.3.0.0/24", gateway="10.4.0.1")
    with pytest.raises(Forbidden, match="no matching subnet for range"):
        settle_pool("10.3.0.0/24", ip_range="10.3.1.0/25")
    with pytest.raises(InvalidParameter, match=r"invalid CIDR address: 10\.3\.0\.0/33"):
        settle_pool("10.3.0.0/33")


def test_addresses_are_serial_and_skip_the_reserved() -> None:
    space = AddressSpace(settle_pool("10.5.0.0/29", aux={"router": "10.5.0.2"}), "net")
    got = [str(space.allocate()) for _ in range(4)]
    assert got == ["10.5.0.3", "10.5.0.4", "10.5.0.5", "10.5.0.6"]
    with pytest.raises(Unavailable, match=r"no available IPv4 addresses .*: net"):
        space.allocate()
    space.release(ipaddress.IPv4Address("10.5.0.4"))
    assert str(space.allocate()) == "10.5.0.4"


def test_a_freed_address_is_not_given_again_at_once() -> None:
    space = AddressSpace(settle_pool("10.6.0.0/24"), "net")
    first = space.allocate()
    space.release(first)
    assert space.allocate() != first


def test_requested_addresses() -> None:
    space = AddressSpace(settle_pool("10.7.0.0/24", ip_range="10.7.0.128/25"), "net")
    assert str(space.allocate("10.7.0.9")) == "10.7.0.9"  # outside the range, inside the subnet
    with pytest.raises(InvalidParameter, match="Address already in use"):
        space.allocate("10.7.0.9")
    with pytest.raises(InvalidParameter, match="Address already in use"):
        space.allocate("10.7.0.1")  # the gateway
    with pytest.raises(InvalidParameter, match="no configured subnet or ip-range contain"):
        space.allocate("10.8.0.1")
    assert str(space.allocate()) == "10.7.0.129"


@given(st.integers(min_value=24, max_value=29), st.data())
def test_allocation_never_repeats_and_stays_in_range(prefix: int, data: st.DataObject) -> None:
    space = AddressSpace(settle_pool(f"10.9.0.0/{prefix}"), "net")
    held: set[ipaddress.IPv4Address] = set()
    for _ in range(data.draw(st.integers(min_value=1, max_value=40))):
        if held and data.draw(st.booleans()):
            gone = data.draw(st.sampled_from(sorted(held)))
            held.discard(gone)
            space.release(gone)
            continue
        try:
            address = space.allocate()
        except Unavailable:
            assert len(held) == Net(f"10.9.0.0/{prefix}").num_addresses - 3
            continue
        assert address not in held and address in space.subnet
        assert address not in (space.subnet.network_address, space.subnet.broadcast_address)
        held.add(address)


def test_host_routes_are_read_from_procfs(tmp_path: object) -> None:
    from pathlib import Path

    table = Path(str(tmp_path)) / "route"
    table.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    )
    assert host_routes(table) == [Net("192.0.2.0/24")]
