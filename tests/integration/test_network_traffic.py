"""Traffic through essaim's networks, as the course shows it: names and aliases on user
networks, isolation between networks, legacy links, published ports (TCP, UDP, -P) from
the host and from another host, the host/none/container modes, connect and disconnect
while running, macvlan, and what survives a daemon restart or is left after removal.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import EssaimDaemon, fails, ok
from tests.integration.network_hosts import PeerHost, http_get, tcp_connects, udp_ask

pytestmark = pytest.mark.integration

SERVE = "mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -h /www -p 80"
# Debian's busybox has no UDP server; the host's Python serves instead (read-only binds).
HOST_PYTHON = ["-v", "/usr:/usr:ro", "-v", "/usr/lib:/lib:ro", "-v", "/usr/lib64:/lib64:ro"]
UDP_ECHO = (
    "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('', 81))\n"
    "while True:\n d, a = s.recvfrom(512); s.sendto(b'echo:' + d, a)"
)


def fetch_inside(daemon: EssaimDaemon, container: str, host: str, port: int = 80) -> str:
    """An HTTP GET from inside a container (busybox's nc: Debian's busybox wget crashes)."""
    request = f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 5 {host} {port}'
    response = ok(daemon.docker("exec", container, "sh", "-c", request))
    return response.split("\n\n", 1)[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def addresses(text: str) -> list[str]:
    """The answers in busybox nslookup's output (the server's own line left out)."""
    return re.findall(r"^Address: (\S+)$", text, re.M)


def ip_of(daemon: EssaimDaemon, container: str, network: str) -> str:
    fmt = f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}'
    return ok(daemon.docker("inspect", "-f", fmt, container)).strip()


def wait_http(url: str, netns: Path | None = None) -> str:
    """httpd in a container that just started may not listen yet."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return http_get(url, netns)
        except ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[PeerHost]:
    host = PeerHost(tmp_path).create()
    try:
        yield host
    finally:
        host.remove()


def test_names_and_aliases_resolve_within_their_network(daemon: EssaimDaemon) -> None:
    d = daemon
    ok(d.docker("network", "create", "front"))
    ok(d.docker("network", "create", "back"))
    try:
        ok(d.docker("run", "-d", "--name", "web1", "--network", "front", "--network-alias", "pool",
                    "busybox", "sh", "-c", SERVE.format(text="from-web1")))  # fmt: skip
        ok(d.docker("run", "-d", "--name", "web2", "--network", "front", "--network-alias", "pool",
                    "busybox", "sleep", "300"))  # fmt: skip
        ok(d.docker("run", "-d", "--name", "outsider", "--network", "back",
                    "busybox", "sleep", "300"))  # fmt: skip
        web1, web2 = ip_of(d, "web1", "front"), ip_of(d, "web2", "front")
        assert addresses(ok(d.docker("exec", "web2", "nslookup", "web1"))) == [web1]
        assert sorted(addresses(ok(d.docker("exec", "web2", "nslookup", "pool")))) == sorted(
            [web1, web2]
        )
        # `name.network` and the short id resolve too.
        assert addresses(ok(d.docker("exec", "web2", "nslookup", "web1.front"))) == [web1]
        short = ok(d.docker("inspect", "-f", "{{.Id}}", "web1"))[:12]
        assert addresses(ok(d.docker("exec", "web2", "nslookup", short))) == [web1]
        assert fetch_inside(d, "web2", "web1").strip() == "from-web1"
        # Another network neither resolves nor reaches them.
        assert "NXDOMAIN" in d.docker("exec", "outsider", "nslookup", "web1").stdout
        fails(d.docker("exec", "outsider", "ping", "-c", "1", "-W", "1", web1))
        # A rename is seen at once.
        ok(d.docker("rename", "web1", "web-one"))
        assert addresses(ok(d.docker("exec", "web2", "nslookup", "web-one"))) == [web1]
        assert "NXDOMAIN" in d.docker("exec", "web2", "nslookup", "web1").stdout
        resolv = ok(d.docker("exec", "web2", "cat", "/etc/resolv.conf"))
        assert "nameserver 127.0.0.11" in resolv and "options ndots:0" in resolv
        hosts = ok(d.docker("exec", "web2", "cat", "/etc/hosts"))
        assert re.search(rf"^{re.escape(web2)}\t\w+$", hosts, re.M), hosts
    finally:
        d.docker("rm", "-f", "web1", "web-one", "web2", "outsider")
        d.docker("network", "rm", "front", "back")


def test_default_bridge_has_no_names_but_links_work(daemon: EssaimDaemon) -> None:
    d = daemon
    ok(d.docker("run", "-d", "--name", "db", "--expose", "5432", "--expose", "99/udp",
                "-e", "SECRET=s3", "busybox", "sleep", "300"))  # fmt: skip
    try:
        db_ip = ip_of(d, "db", "bridge")
        out = d.docker("run", "--rm", "busybox", "ping", "-c", "1", "-W", "1", "db")
        assert out.returncode != 0
        linked = ok(d.docker("run", "--rm", "--link", "db:database", "busybox", "sh", "-c",
                             "ping -c 1 -W 2 database >/dev/null && cat /etc/hosts"))  # fmt: skip
        assert re.search(rf"^{re.escape(db_ip)}\tdatabase \w+ db$", linked, re.M), linked
        env = ok(d.docker("run", "--rm", "--name", "linker", "--link", "db:database",
                          "busybox", "env")).splitlines()  # fmt: skip
        assert {
            "DATABASE_NAME=/linker/database",
            f"DATABASE_PORT=udp://{db_ip}:99",
            f"DATABASE_PORT_5432_TCP=tcp://{db_ip}:5432",
            f"DATABASE_PORT_5432_TCP_ADDR={db_ip}",
            "DATABASE_PORT_5432_TCP_PORT=5432",
            "DATABASE_PORT_5432_TCP_PROTO=tcp",
            "DATABASE_ENV_SECRET=s3",
        } <= set(env), env
        resolv = ok(d.docker("run", "--rm", "busybox", "cat", "/etc/resolv.conf"))
        assert "127.0.0.11" not in resolv
    finally:
        d.docker("rm", "-f", "db")


def test_published_port_from_the_host_and_from_another_host(
    daemon: EssaimDaemon, peer: PeerHost
) -> None:
    d = daemon
    port = free_port()
    ok(d.docker("run", "-d", "--name", "pub", "-p", f"{port}:80", "busybox", "sh", "-c",
                SERVE.format(text="published")))  # fmt: skip
    try:
        assert ok(d.docker("port", "pub")).strip() == f"80/tcp -> 0.0.0.0:{port}"
        assert wait_http(f"http://127.0.0.1:{port}/").strip() == "published"
        assert http_get(f"http://{peer.host_address}:{port}/", peer.path).strip() == "published"
        # As Docker 28 (gateway mode "nat"): another host reaches the container through
        # the published port only, not at its own address; the host itself does.
        address = ip_of(d, "pub", "bridge")
        assert not tcp_connects(address, 80, peer.path)
        assert tcp_connects(address, 80)
        # Hairpin: the container reaches its own published port through the host's address.
        assert fetch_inside(d, "pub", peer.host_address, port).strip() == "published"
        ps = ok(d.docker("ps", "--filter", "name=pub", "--format", "{{.Ports}}"))
        assert ps.strip() == f"0.0.0.0:{port}->80/tcp"
        # The port is held: a second container cannot take it.
        fails(d.docker("run", "-d", "-p", f"{port}:80", "busybox", "true"),
              "port is already allocated", code=125)  # fmt: skip
    finally:
        d.docker("rm", "-f", "pub")
    with pytest.raises(ConnectionError):
        http_get(f"http://127.0.0.1:{port}/")


def test_publish_all_and_udp(daemon: EssaimDaemon) -> None:
    d = daemon
    ok(d.docker("run", "-d", "--name", "every", "-P", "--expose", "80", "--expose", "81/udp",
                *HOST_PYTHON, "busybox", "sh", "-c",
                f"python3 -c \"{UDP_ECHO}\" & {SERVE.format(text='all')}"))  # fmt: skip
    try:
        mapping = json.loads(ok(d.docker("inspect", "-f", "{{json .NetworkSettings.Ports}}",
                                         "every")))  # fmt: skip
        tcp, udp = int(mapping["80/tcp"][0]["HostPort"]), int(mapping["81/udp"][0]["HostPort"])
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        assert low <= tcp <= high and low <= udp <= high
        assert wait_http(f"http://127.0.0.1:{tcp}/").strip() == "all"
        deadline = time.monotonic() + 10
        while True:
            try:
                assert udp_ask("127.0.0.1", udp, "hi") == "echo:hi"
                break
            except ConnectionError:
                if time.monotonic() > deadline:
                    raise
    finally:
        d.docker("rm", "-f", "every")


def test_host_none_and_container_modes(daemon: EssaimDaemon) -> None:
    d = daemon

    # Veths of containers that just ended go when the kernel gets to them: left out.
    def lasting(names: list[str]) -> list[str]:
        return sorted(n for n in names if not n.startswith("veth"))

    host_links = lasting([p.name for p in Path("/sys/class/net").iterdir()])
    in_host = ok(d.docker("run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net"))
    assert lasting(in_host.split()) == host_links
    in_none = ok(d.docker("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net"))
    assert in_none.split() == ["lo"]
    ok(d.docker("run", "-d", "--name", "owner", "busybox", "sleep", "300"))
    try:
        owner = ok(d.docker("exec", "owner", "ip", "-4", "-o", "addr", "show", "eth0"))
        joined = ok(d.docker("run", "--rm", "--network", "container:owner", "busybox",
                             "ip", "-4", "-o", "addr", "show", "eth0"))  # fmt: skip
        assert joined.split()[3] == owner.split()[3]
        fails(d.docker("network", "connect", "bridge", "owner"), "already exists")
    finally:
        d.docker("rm", "-f", "owner")


def test_connect_and_disconnect_a_running_container(daemon: EssaimDaemon) -> None:
    d = daemon
    ok(d.docker("network", "create", "later"))
    try:
        ok(d.docker("run", "-d", "--name", "roamer", "busybox", "sleep", "300"))
        ok(d.docker("run", "-d", "--name", "asker", "--network", "later",
                    "busybox", "sleep", "300"))  # fmt: skip
        assert "NXDOMAIN" in d.docker("exec", "asker", "nslookup", "roamer-alias").stdout
        ok(d.docker("network", "connect", "--alias", "roamer-alias", "later", "roamer"))
        links = ok(d.docker("exec", "roamer", "ls", "/sys/class/net")).split()
        assert sorted(links) == ["eth0", "eth1", "lo"]
        later_ip = ip_of(d, "roamer", "later")
        assert addresses(ok(d.docker("exec", "asker", "nslookup", "roamer-alias"))) == [later_ip]
        assert "nameserver 127.0.0.11" in ok(d.docker("exec", "roamer", "cat", "/etc/resolv.conf"))
        ok(d.docker("exec", "roamer", "ping", "-c", "1", "-W", "2", "asker"))
        ok(d.docker("network", "disconnect", "later", "roamer"))
        assert ok(d.docker("exec", "roamer", "ls", "/sys/class/net")).split() == ["eth0", "lo"]
        assert "NXDOMAIN" in d.docker("exec", "asker", "nslookup", "roamer-alias").stdout
        fails(d.docker("network", "disconnect", "later", "roamer"), "is not connected")
    finally:
        d.docker("rm", "-f", "roamer", "asker")
        d.docker("network", "rm", "later")


def test_macvlan_reaches_another_host_on_the_parent_link(
    daemon: EssaimDaemon, tmp_path: Path
) -> None:
    d = daemon
    lan = PeerHost(tmp_path, routed=False).create()
    try:
        ok(d.docker("network", "create", "-d", "macvlan", "--subnet", lan.subnet,
                    "-o", f"parent={lan.host_side}", "lan"))  # fmt: skip
        ok(d.docker("run", "-d", "--name", "on-lan", "--network", "lan", "busybox", "sh", "-c",
                    SERVE.format(text="macvlan")))  # fmt: skip
        address = ip_of(d, "on-lan", "lan")
        assert address.startswith(lan.subnet.rsplit(".", 2)[0])
        assert wait_http(f"http://{address}/", lan.path).strip() == "macvlan"
        ok(d.docker("exec", "on-lan", "ping", "-c", "1", "-W", "2", lan.address))
    finally:
        d.docker("rm", "-f", "on-lan")
        d.docker("network", "rm", "lan")
        lan.remove()


def _veths_on(bridge: str) -> set[str]:
    path = Path(f"/sys/class/net/{bridge}/brif")
    return {p.name for p in path.iterdir()} if path.is_dir() else set()


def test_restart_keeps_ports_and_dns_and_removal_leaves_nothing(own_daemon: EssaimDaemon) -> None:
    d = own_daemon
    port = free_port()
    ok(d.docker("network", "create", "-o", f"com.docker.network.bridge.name=esr{d.tag[:6]}",
                "kept"))  # fmt: skip
    ok(d.docker("run", "-d", "--name", "svc", "--network", "kept", "-p", f"{port}:80",
                "busybox", "sh", "-c", SERVE.format(text="survives")))  # fmt: skip
    ok(d.docker("run", "-d", "--name", "client", "--network", "kept", "busybox", "sleep", "300"))
    ok(d.docker("run", "-d", "--name", "plain", "busybox", "sleep", "300"))
    assert wait_http(f"http://127.0.0.1:{port}/").strip() == "survives"
    veths = _veths_on(f"esr{d.tag[:6]}") | _veths_on(d.bridge)
    assert len(veths) == 3
    d.kill9()
    d.start()
    assert http_get(f"http://127.0.0.1:{port}/").strip() == "survives"
    svc_ip = ip_of(d, "svc", "kept")
    assert addresses(ok(d.docker("exec", "client", "nslookup", "svc"))) == [svc_ip]
    assert ok(d.docker("port", "svc")).strip() == f"80/tcp -> 0.0.0.0:{port}"

    ok(d.docker("rm", "-f", "svc", "client", "plain"))
    ok(d.docker("network", "rm", "kept"))
    deadline = time.monotonic() + 15  # the idle default bridge goes after a grace
    while d.network_leftovers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert d.network_leftovers() == []
    present = {p.name for p in Path("/sys/class/net").iterdir()}
    assert not (veths & present)


def test_a_failed_start_holds_nothing(daemon: EssaimDaemon) -> None:
    d = daemon
    port = free_port()
    fails(d.docker("run", "--name", "broken", "-p", f"{port}:80", "busybox", "no-such-program"),
          "executable file not found", code=127)  # fmt: skip
    try:

        def rules() -> str:
            return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout

        deadline = time.monotonic() + 5  # the rules follow the release, off its path
        while f" {port} :" in rules() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f" {port} :" not in rules()
        with socket.socket() as s:
            s.bind(("0.0.0.0", port))  # the port was given back
        assert json.loads(ok(d.docker("inspect", "-f", "{{json .NetworkSettings.Ports}}",
                                      "broken"))) == {}  # fmt: skip
    finally:
        d.docker("rm", "-f", "broken")


def test_a_port_conflict_fails_the_start_and_leaves_nothing(daemon: EssaimDaemon) -> None:
    d = daemon
    port = free_port()
    ok(d.docker("run", "-d", "--name", "holder", "-p", f"{port}:80", "busybox", "sleep", "300"))
    try:
        before = _veths_on(d.bridge)
        refused = d.docker("run", "-d", "--name", "second", "-p", f"{port}:80", "-p", "81",
                           "busybox", "sleep", "300")  # fmt: skip
        assert refused.returncode == 125
        assert (
            "failed to set up container networking: driver failed programming external "
            "connectivity on endpoint second" in refused.stderr
        )
        assert f"Bind for 0.0.0.0:{port} failed: port is already allocated" in refused.stderr
        assert _veths_on(d.bridge) <= before  # none of its own (others may be going)
        state = json.loads(ok(d.docker("inspect", "-f", "{{json .State}}", "second")))
        assert state["Status"] == "created" and "port is already allocated" in state["Error"]
        ok(d.docker("rm", "-f", "holder"))
        ok(d.docker("start", "second"))  # the port is free now
        assert ok(d.docker("port", "second", "80")).strip() == f"0.0.0.0:{port}"
    finally:
        d.docker("rm", "-f", "holder", "second")


def test_a_container_may_listen_on_port_53_itself(daemon: EssaimDaemon) -> None:
    """127.0.0.11:53 is redirected to the embedded server's own ports, as dockerd does,
    so a DNS server in the container can bind 0.0.0.0:53."""
    d = daemon
    ok(d.docker("network", "create", "dnsnet"))
    try:
        ok(d.docker("run", "-d", "--name", "peer53", "--network", "dnsnet",
                    "busybox", "sleep", "300"))  # fmt: skip
        bind = (
            "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.bind(('0.0.0.0', 53)); print('bound')"
        )
        out = ok(d.docker("run", "--rm", "--network", "dnsnet", *HOST_PYTHON, "busybox", "sh",
                          "-c", f'python3 -c "{bind}" && nslookup peer53'))  # fmt: skip
        assert out.startswith("bound\n")
        assert addresses(out) == [ip_of(d, "peer53", "dnsnet")]
    finally:
        d.docker("rm", "-f", "peer53")
        d.docker("network", "rm", "dnsnet")


def test_nat_unprotected_lets_other_hosts_reach_containers_directly(
    daemon: EssaimDaemon, peer: PeerHost
) -> None:
    d = daemon
    ok(d.docker("network", "create", "-o",
                "com.docker.network.bridge.gateway_mode_ipv4=nat-unprotected", "open"))  # fmt: skip
    try:
        ok(d.docker("run", "-d", "--name", "reachable", "--network", "open", "busybox", "sh",
                    "-c", SERVE.format(text="direct")))  # fmt: skip
        address = ip_of(d, "reachable", "open")
        assert wait_http(f"http://{address}/", peer.path).strip() == "direct"
        fails(d.docker("network", "create", "-o",
                       "com.docker.network.bridge.gateway_mode_ipv4=sideways", "bad-mode"),
              "unknown gateway mode")  # fmt: skip
    finally:
        d.docker("rm", "-f", "reachable")
        d.docker("network", "rm", "open")
