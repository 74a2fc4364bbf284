"""`docker ps` selection as dockerd's daemon/list.go does it, on containers in memory."""

from __future__ import annotations

import asyncio
import json

import pytest

from essaim.api.container_list import ContainerSelection, image_family_of
from essaim.api.container_network_wire import (
    network_ports,
    parse_port_bindings,
    port_bindings_wire,
    summary_ports,
)
from essaim.api.filters import Filters
from essaim.errors import EssaimError, InvalidParameter, NotFound
from essaim.model.container import Container, ContainerConfig, ContainerState, HostConfig
from essaim.model.network import NetworkState, PublishedPort

RAN = "2024-01-01T00:00:01Z"


def container(
    cid: str, name: str, *, status: str = "running", exit_code: int = 0, image: str = "sha256:a",
    started: str = RAN, network: str = "default", exposed: list[str] | None = None,
) -> Container:  # fmt: skip
    # A running container on a network of its own namespace holds a sandbox.
    sandbox = status == "running" and network not in ("host", "none")
    return Container(
        id=cid * 64 if len(cid) == 1 else cid, name=name, created=RAN, image_id=image,
        config=ContainerConfig(image="busybox", exposed_ports=exposed or []),
        host_config=HostConfig(network_mode=network), path="true", args=[],
        state=ContainerState(status=status, exit_code=exit_code, started_at=started),
        network_state=NetworkState(sandbox_id="s", sandbox_key="/run/x") if sandbox else None,
    )  # fmt: skip


NEWEST_FIRST = [
    container("c", "gamma", status="exited", exit_code=3, image="sha256:child"),
    container("b", "beta", status="created", started="0001-01-01T00:00:00Z", network="none"),
    container("a", "alpha", exposed=["80/tcp", "53/udp"]),
]


def select(filters: dict[str, list[str]], *, show_all: bool = True, limit: int = -1) -> list[str]:
    async def family(ref: str) -> set[str] | None:
        tree = {"sha256:a": ["sha256:child"], "sha256:child": []}
        ids = {"busybox": "sha256:a", "child": "sha256:child"}

        async def get_id(r: str) -> str:
            if r not in ids:
                raise NotFound(f"No such image: {r}")
            return ids[r]

        async def children(i: str) -> list[str]:
            return tree[i]

        return await image_family_of(get_id, children)(ref)

    async def run() -> list[str]:
        selection = await ContainerSelection.parse(
            Filters.parse(json.dumps(filters)), show_all=show_all, limit=limit,
            containers=NEWEST_FIRST, image_family=family,
        )  # fmt: skip
        return [c.name for c in selection.select(NEWEST_FIRST)]

    return asyncio.run(run())


def test_running_only_unless_all_status_or_limit() -> None:
    assert select({}, show_all=False) == ["alpha"]
    assert select({"status": ["exited"]}, show_all=False) == ["gamma"]
    assert select({}, show_all=False, limit=2) == ["gamma", "beta"]
    assert select({"exited": ["3"]}, show_all=False) == []


def test_names_are_regular_expressions_and_ids_unique_prefixes() -> None:
    assert select({"name": ["^/al"]}) == ["alpha"]
    assert select({"name": ["a$"]}) == ["gamma", "beta", "alpha"]
    assert select({"name": ["[unclosed"]}) == []
    assert select({"id": ["bbb"]}) == ["beta"]
    assert select({"id": ["bbb"], "name": ["alpha"]}) == []


def test_exited_needs_a_run_and_before_since_walk_the_order() -> None:
    # Running (alpha) or never started (beta, exit code 0): no exit to match.
    assert select({"exited": ["0"]}) == []
    assert select({"exited": ["0", "3"]}) == ["gamma"]
    assert select({"before": ["gamma"]}) == ["beta", "alpha"]
    assert select({"since": ["a" * 64]}) == ["gamma", "beta"]
    with pytest.raises(NotFound, match="No such container: aaa"):
        select({"before": ["aaa"]})


def test_ancestors_include_descendants() -> None:
    assert select({"ancestor": ["busybox"]}) == ["gamma", "beta", "alpha"]
    assert select({"ancestor": ["child"]}) == ["gamma"]
    assert select({"ancestor": ["missing"]}) == []


def test_network_and_port_filters() -> None:
    assert select({"network": ["bridge"]}) == ["gamma", "alpha"]
    assert select({"network": ["none"]}) == ["beta"]
    assert select({"expose": ["53/udp"]}) == ["alpha"]
    assert select({"expose": ["50-60/udp"]}) == ["alpha"]
    assert select({"expose": ["53"]}) == []


@pytest.mark.parametrize(
    ("filters", "error"),
    [
        ({"status": ["asleep"]}, "Invalid filter 'status=asleep'"),
        ({"health": ["fine"]}, "Unrecognised filter value for health: fine"),
        ({"is-task": ["maybe"]}, "Invalid filter 'is-task=[maybe]'"),
        ({"exited": ["x"]}, 'strconv.Atoi: parsing "x": invalid syntax'),
        ({"publish": ["1:2"]}, "filter for 'publish' should not contain ':': 1:2"),
        ({"expose": ["http"]}, "error while looking up for expose http"),
        ({"colour": ["red"]}, "invalid filter 'colour'"),
    ],
)
def test_bad_values_fail_with_dockerds_words(filters: dict[str, list[str]], error: str) -> None:
    with pytest.raises(EssaimError, match=error.replace("[", r"\[").replace("]", r"\]")):
        select(filters)


def test_ports_only_while_running_on_the_bridge() -> None:
    alpha = NEWEST_FIRST[2]
    assert network_ports(alpha) == {"80/tcp": None, "53/udp": None}
    assert summary_ports(alpha) == [
        {"PrivatePort": 80, "Type": "tcp"},
        {"PrivatePort": 53, "Type": "udp"},
    ]
    assert network_ports(container("d", "d", status="exited", exposed=["80/tcp"])) == {}
    assert network_ports(container("e", "e", network="host", exposed=["80/tcp"])) == {}


def test_published_ports_show_their_host_side() -> None:
    web = container("f", "web", exposed=["80/tcp", "443/tcp"])
    assert web.network_state is not None
    web.network_state.ports = [
        PublishedPort(80, "tcp", "0.0.0.0", 8080),
        PublishedPort(80, "tcp", "127.0.0.1", 8081),
    ]
    assert network_ports(web) == {
        "80/tcp": [
            {"HostIp": "0.0.0.0", "HostPort": "8080"},
            {"HostIp": "127.0.0.1", "HostPort": "8081"},
        ],
        "443/tcp": None,
    }
    assert summary_ports(web) == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 8081, "Type": "tcp"},
        {"PrivatePort": 443, "Type": "tcp"},
    ]


def test_port_bindings_are_kept_as_given_and_checked() -> None:
    wire = {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "53/udp": []}
    assert port_bindings_wire(parse_port_bindings(wire)) == wire
    assert parse_port_bindings(None) == {}
    with pytest.raises(InvalidParameter, match='invalid port specification: "http"'):
        parse_port_bindings({"http/tcp": []})
    with pytest.raises(InvalidParameter, match='invalid port specification: "70000"'):
        parse_port_bindings({"80/tcp": [{"HostPort": "70000"}]})
    assert (
        parse_port_bindings({"80": [{"HostPort": "8000-8010"}]})["80"][0].host_port == "8000-8010"
    )
