"""Network endpoints: wire JSON <-> the network service. Create, list (with dockerd's
filters), inspect with the containers on it, remove, prune, connect and disconnect.
"""

from __future__ import annotations

import time
from typing import Any

from essaim.api.container_network_wire import parse_endpoint_config
from essaim.api.container_ops import prune_matcher
from essaim.api.filters import Filters
from essaim.api.request import Request
from essaim.api.responses import AnyResponse, empty, json_response
from essaim.api.router import Router
from essaim.api.wire_fields import string_map
from essaim.engine.containers import ContainerService
from essaim.errors import InvalidParameter
from essaim.model.network import IPAMPool, Network
from essaim.network.sandbox import Sandboxes
from essaim.network.service import CreateRequest, NetworkService

LIST_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")


def _pool_wire(pool: IPAMPool) -> dict[str, Any]:
    wire: dict[str, Any] = {"Subnet": pool.subnet}
    if pool.ip_range:
        wire["IPRange"] = pool.ip_range
    if pool.gateway:
        wire["Gateway"] = pool.gateway
    if pool.aux_addresses:
        wire["AuxiliaryAddresses"] = pool.aux_addresses
    return wire


def network_wire(network: Network, containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "Name": network.name,
        "Id": network.id,
        "Created": network.created,
        "Scope": network.scope,
        "Driver": network.driver,
        "EnableIPv4": True,
        "EnableIPv6": network.enable_ipv6,
        "IPAM": {
            "Driver": network.ipam_driver,
            "Options": network.ipam_options or None,
            "Config": [_pool_wire(p) for p in network.pools],
        },
        "Internal": network.internal,
        "Attachable": network.attachable,
        "Ingress": network.ingress,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": network.options,
        "Labels": network.labels,
    }


def _parse_pools(ipam: dict[str, Any]) -> list[IPAMPool]:
    pools = []
    for entry in ipam.get("Config") or []:
        if not isinstance(entry, dict):
            raise InvalidParameter("json: cannot unmarshal IPAM.Config: expected objects")
        pools.append(
            IPAMPool(
                subnet=str(entry.get("Subnet") or ""),
                gateway=str(entry.get("Gateway") or ""),
                ip_range=str(entry.get("IPRange") or ""),
                aux_addresses=string_map(entry.get("AuxiliaryAddresses"), "AuxiliaryAddresses"),
            )
        )
    return pools


def parse_create(body: Any) -> CreateRequest:
    if not isinstance(body, dict):
        raise InvalidParameter("json: cannot unmarshal the body: expected an object")
    name = body.get("Name")
    if not isinstance(name, str):
        raise InvalidParameter("json: cannot unmarshal Name: expected a string")
    ipam = body.get("IPAM") or {}
    if not isinstance(ipam, dict):
        raise InvalidParameter("json: cannot unmarshal IPAM: expected an object")
    return CreateRequest(
        name=name,
        driver=str(body.get("Driver") or "bridge"),
        internal=bool(body.get("Internal")),
        attachable=bool(body.get("Attachable")),
        ingress=bool(body.get("Ingress")),
        enable_ipv6=bool(body.get("EnableIPv6")),
        ipam_driver=str(ipam.get("Driver") or "default"),
        ipam_options=string_map(ipam.get("Options"), "IPAM.Options"),
        pools=_parse_pools(ipam),
        options=string_map(body.get("Options"), "Options"),
        labels=string_map(body.get("Labels"), "Labels"),
    )


class NetworksAPI:
    def __init__(
        self, networks: NetworkService, sandboxes: Sandboxes, containers: ContainerService
    ) -> None:
        self.networks = networks
        self.sandboxes = sandboxes
        self.containers = containers

    def register(self, router: Router) -> None:
        router.get("/networks", self.list)
        router.post("/networks/create", self.create)
        router.post("/networks/prune", self.prune)
        router.get("/networks/{id}", self.inspect)
        router.delete("/networks/{id}", self.remove)
        router.post("/networks/{id}/connect", self.connect)
        router.post("/networks/{id}/disconnect", self.disconnect)

    def _containers(self, network: Network) -> dict[str, Any]:
        return {
            cid: {
                "Name": name,
                "EndpointID": endpoint.endpoint_id,
                "MacAddress": endpoint.mac_address,
                "IPv4Address": f"{endpoint.ip_address}/{endpoint.prefix_len}",
                "IPv6Address": "",
            }
            for cid, name, endpoint in self.sandboxes.endpoints_on(network.id)
        }

    async def create(self, req: Request) -> AnyResponse:
        network = await self.networks.create(parse_create(await req.json(allow_empty=False)))
        return json_response({"Id": network.id, "Warning": ""}, 201)

    async def inspect(self, req: Request) -> AnyResponse:
        network = self.networks.get(req.params["id"])
        return json_response(network_wire(network, self._containers(network)))

    async def list(self, req: Request) -> AnyResponse:
        filters = Filters.parse(req.query.get("filters"))
        filters.validate(LIST_FILTERS)
        for kind in filters.values("type"):
            if kind not in ("custom", "builtin"):
                raise InvalidParameter(f"invalid filter: 'type'='{kind}'")
        dangling = filters.values("dangling")
        for value in dangling:
            if value not in ("true", "false", "1", "0"):
                raise InvalidParameter(f"invalid value for 'dangling': {value}")
        listed = [
            network_wire(network, {})
            for network in self.networks.all()
            if self._listed(filters, network)
        ]
        return json_response(listed)

    def _listed(self, filters: Filters, network: Network) -> bool:
        """dockerd's network filters: exact driver, scope and type; name by substring,
        id by prefix; labels; dangling (no container, not predefined)."""
        kind = "builtin" if network.predefined else "custom"
        if not (
            filters.match_one("driver", network.driver)
            and filters.match_one("scope", network.scope)
            and filters.match_one("type", kind)
            and filters.match_labels(network.labels)
        ):
            return False
        names, ids = filters.values("name"), filters.values("id")
        if names and not any(v in network.name for v in names):
            return False
        if ids and not any(network.id.startswith(v) for v in ids):
            return False
        dangling = filters.values("dangling")
        if not dangling:
            return True
        unused = not network.predefined and not self.sandboxes.active_endpoints(network.id)
        return unused == (dangling[0] in ("true", "1"))

    async def remove(self, req: Request) -> AnyResponse:
        await self.networks.remove(req.params["id"])
        return empty(204)

    async def prune(self, req: Request) -> AnyResponse:
        matcher = prune_matcher(Filters.parse(req.query.get("filters")), time.time_ns())
        deleted = await self.networks.prune(lambda n: not matcher(n.labels, n.created))
        return json_response({"NetworksDeleted": deleted})

    async def connect(self, req: Request) -> AnyResponse:
        body = await req.json(allow_empty=False)
        if not isinstance(body, dict) or not body.get("Container"):
            raise InvalidParameter("container ID must be specified")
        network = self.networks.get(req.params["id"])
        config = parse_endpoint_config(body.get("EndpointConfig"))
        await self.containers.connect_network(str(body["Container"]), network.id, config)
        return empty(200)

    async def disconnect(self, req: Request) -> AnyResponse:
        body = await req.json(allow_empty=False)
        if not isinstance(body, dict) or not body.get("Container"):
            raise InvalidParameter("container ID must be specified")
        await self.containers.disconnect_network(
            str(body["Container"]), req.params["id"], force=bool(body.get("Force"))
        )
        return empty(200)
