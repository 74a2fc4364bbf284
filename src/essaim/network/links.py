"""The Linux side of networks, over netlink (pyroute2): bridges, the veth pairs and
macvlan links that put a container on them, addresses and routes inside its namespace.

Every function here blocks (netlink round trips): callers run them off the event loop.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from essaim.errors import InvalidParameter, SystemError_
from essaim.network.netns import run_in_netns

ENOENT, EEXIST, ENODEV = 2, 17, 19


def random_mac() -> str:
    """A locally administered unicast address, as dockerd 25+ generates them."""
    octets = bytearray(secrets.token_bytes(6))
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in octets)


def host_interface_name() -> str:
    return "veth" + secrets.token_hex(4)[:7]


def _index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def interface_exists(name: str) -> bool:
    with IPRoute() as ipr:
        return _index(ipr, name) is not None


def _write_sysctl(path: str, value: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        Path(path).write_text(value)


def ensure_bridge(name: str, gateway: ipaddress.IPv4Interface, mtu: int = 0) -> None:
    """The bridge up with its gateway address (made if missing); `route_localnet` on it
    lets 127.0.0.1 be DNAT'd towards its containers."""
    with IPRoute() as ipr:
        index = _index(ipr, name)
        if index is None:
            try:
                ipr.link("add", ifname=name, kind="bridge")
            except NetlinkError as exc:
                raise SystemError_(f"failed to create bridge {name}: {exc.args[1]}") from None
            index = _index(ipr, name)
            assert index is not None
        if mtu:
            ipr.link("set", index=index, mtu=mtu)
        have = {
            (a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=2)
        }
        if (str(gateway.ip), gateway.network.prefixlen) not in have:
            with contextlib.suppress(NetlinkError):
                ipr.addr(
                    "add", index=index, address=str(gateway.ip),
                    prefixlen=gateway.network.prefixlen,
                    broadcast=str(gateway.network.broadcast_address),
                )  # fmt: skip
        ipr.link("set", index=index, state="up")
    _write_sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")


def delete_interface(name: str) -> None:
    """Gone (a veth takes its peer with it); already gone is fine."""
    with IPRoute() as ipr:
        index = _index(ipr, name)
        if index is None:
            return
        try:
            ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code not in (ENOENT, ENODEV):
                raise SystemError_(f"failed to delete interface {name}: {exc.args[1]}") from None


def loopback_up(netns: Path) -> None:
    def up() -> None:
        with IPRoute() as ipr:
            ipr.link("set", index=_index(ipr, "lo"), state="up")

    run_in_netns(netns, up)


@dataclass(frozen=True)
class InterfaceSettings:
    """The container side of an endpoint."""

    name: str  # eth0...
    address: ipaddress.IPv4Interface
    mac: str
    gateway: ipaddress.IPv4Address | None  # None: no default route through it
    mtu: int = 0


def _configure_inside(netns: Path, temporary: str, settings: InterfaceSettings) -> None:
    def configure() -> None:
        with IPRoute() as ipr:
            # The loopback too, while we are in there (a thread and a socket each time).
            ipr.link("set", index=_index(ipr, "lo"), state="up")
            index = _index(ipr, temporary)
            if index is None:
                raise SystemError_(f"interface {temporary} did not reach the container")
            ipr.link("set", index=index, ifname=settings.name, address=settings.mac)
            if settings.mtu:
                ipr.link("set", index=index, mtu=settings.mtu)
            ipr.addr(
                "add", index=index, address=str(settings.address.ip),
                prefixlen=settings.address.network.prefixlen,
                broadcast=str(settings.address.network.broadcast_address),
            )  # fmt: skip
            ipr.link("set", index=index, state="up")
            if settings.gateway is not None:
                try:
                    ipr.route("add", dst="0.0.0.0/0", gateway=str(settings.gateway), oif=index)
                except NetlinkError as exc:
                    # Another network gave the default route already: the first one keeps it.
                    if exc.code != EEXIST:
                        raise

    run_in_netns(netns, configure)


def _add_link(ipr: IPRoute, netns: Path, failure: str, **attributes: object) -> None:
    """A link added with one end (`net_ns_fd` in the attributes' peer, or itself) made
    straight in the namespace at `netns`."""
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if "peer" in attributes:
            attributes["peer"] = {**attributes["peer"], "net_ns_fd": fd}  # type: ignore[dict-item]
        else:
            attributes["net_ns_fd"] = fd
        ipr.link("add", **attributes)
    except NetlinkError as exc:
        raise SystemError_(f"{failure}: {exc.args[1]}") from None
    finally:
        os.close(fd)


def add_veth_endpoint(
    bridge: str, netns: Path, host_name: str, settings: InterfaceSettings, *, hairpin: bool = True
) -> None:
    """A veth pair: `host_name` on the bridge, its peer in the container as `settings.name`.
    Undone (the pair deleted) when any step fails."""
    temporary = "es" + secrets.token_hex(5)
    with IPRoute() as ipr:
        bridge_index = _index(ipr, bridge)
        if bridge_index is None:
            raise SystemError_(f"bridge {bridge} not found")
        _add_link(
            ipr, netns, f"failed to add the host ({host_name}) <=> sandbox veth pair",
            ifname=host_name, kind="veth", peer={"ifname": temporary},
        )  # fmt: skip
        try:
            index = _index(ipr, host_name)
            if settings.mtu:
                ipr.link("set", index=index, mtu=settings.mtu)
            ipr.link("set", index=index, master=bridge_index, state="up")
            if hairpin:
                # A container reaches its own published ports through the host's address.
                Path(f"/sys/class/net/{host_name}/brport/hairpin_mode").write_text("1")
            _configure_inside(netns, temporary, settings)
        except BaseException:
            with contextlib.suppress(NetlinkError):
                ipr.link("del", ifname=host_name)
            raise


def add_macvlan_endpoint(parent: str, mode: str, netns: Path, settings: InterfaceSettings) -> None:
    """A macvlan link on `parent`, made in the host's namespace and moved to the container's."""
    temporary = "es" + secrets.token_hex(5)
    with IPRoute() as ipr:
        parent_index = _index(ipr, parent)
        if parent_index is None:
            raise InvalidParameter(f"-o parent interface was not found on the host: {parent}")
        _add_link(
            ipr, netns, "failed to create the macvlan port",
            ifname=temporary, kind="macvlan", link=parent_index, macvlan_mode=mode,
        )  # fmt: skip
    try:
        _configure_inside(netns, temporary, settings)
    except BaseException:
        remove_inside(netns, temporary)
        raise


def remove_inside(netns: Path, name: str) -> None:
    """An interface inside the container's namespace deleted (a disconnect)."""

    def remove() -> None:
        with IPRoute() as ipr:
            index = _index(ipr, name)
            if index is not None:
                with contextlib.suppress(NetlinkError):
                    ipr.link("del", index=index)

    run_in_netns(netns, remove)


def set_ip_forwarding() -> None:
    """As dockerd (`--ip-forward`, on by default): routing between bridges and out."""
    path = Path("/proc/sys/net/ipv4/ip_forward")
    if path.read_text().strip() != "1":
        path.write_text("1")
