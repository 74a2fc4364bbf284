"""Volume endpoints: wire JSON <-> the volume service. Create, list, inspect, remove and
prune, with dockerd's filters (`name`, `driver`, `label`, `dangling`; prune's `all`).
"""

from __future__ import annotations

from typing import Any

from essaim.api.filters import Filters
from essaim.api.request import Request
from essaim.api.responses import AnyResponse, empty, json_response
from essaim.api.router import Router
from essaim.api.wire_fields import string_map
from essaim.errors import InvalidParameter
from essaim.model.volume import Volume
from essaim.volume.query import VolumeQuery
from essaim.volume.service import VolumeService

LIST_FILTERS = ("dangling", "name", "driver", "label")
PRUNE_FILTERS = ("label", "label!", "all")


def volume_wire(volume: Volume, mountpoint: str) -> dict[str, Any]:
    return {
        "CreatedAt": volume.created_at,
        "Driver": volume.driver,
        "Labels": volume.labels or None,
        "Mountpoint": mountpoint,
        "Name": volume.name,
        "Options": volume.options or None,
        "Scope": "local",
    }


def _filter_bool(filters: Filters, key: str) -> bool | None:
    """dockerd's GetBoolOrDefault: one of true/1 or false/0, not both, not neither."""
    if key not in filters:
        return None
    values = set(filters.values(key))
    truthy, falsy = bool(values & {"1", "true"}), bool(values & {"0", "false"})
    if truthy == falsy:
        raise InvalidParameter(f"invalid filter '{key}={','.join(filters.values(key))}'")
    return truthy


def _prune_all(filters: Filters) -> bool:
    values = filters.values("all")
    if len(values) > 1:
        raise InvalidParameter(
            f"invalid filter 'all=[{' '.join(values)}]': only one value is expected"
        )
    if not values:
        return False
    word = values[0]
    if word in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if word in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise InvalidParameter(
        f"invalid filter 'all': strconv.ParseBool: parsing \"{word}\": invalid syntax"
    )


class VolumesAPI:
    def __init__(self, volumes: VolumeService) -> None:
        self.volumes = volumes

    def register(self, router: Router) -> None:
        router.post("/volumes/create", self.create)
        router.post("/volumes/prune", self.prune)
        router.get("/volumes", self.list)
        router.get("/volumes/{name}", self.inspect)
        router.delete("/volumes/{name}", self.remove)

    def _wire(self, volume: Volume) -> dict[str, Any]:
        return volume_wire(volume, self.volumes.mountpoint(volume.name))

    async def create(self, req: Request) -> AnyResponse:
        body = await req.json(allow_empty=True) or {}
        if not isinstance(body, dict):
            raise InvalidParameter("json: cannot unmarshal the body: expected an object")
        name = body.get("Name") or ""
        driver = body.get("Driver") or ""
        if not isinstance(name, str) or not isinstance(driver, str):
            raise InvalidParameter("json: cannot unmarshal Name or Driver: expected a string")
        volume, _ = await self.volumes.create(
            name, driver,
            string_map(body.get("DriverOpts"), "DriverOpts"),
            string_map(body.get("Labels"), "Labels"),
        )  # fmt: skip
        return json_response(self._wire(volume), 201)

    async def list(self, req: Request) -> AnyResponse:
        filters = Filters.parse(req.query.get("filters"))
        filters.validate(LIST_FILTERS)
        query = VolumeQuery(
            names=filters.values("name"),
            drivers=filters.values("driver"),
            labels=filters.values("label"),
            dangling=_filter_bool(filters, "dangling"),
        )
        found = [self._wire(v) for v in self.volumes.find(query)]
        return json_response({"Volumes": found, "Warnings": None})

    async def inspect(self, req: Request) -> AnyResponse:
        return json_response(self._wire(self.volumes.get(req.params["name"])))

    async def remove(self, req: Request) -> AnyResponse:
        await self.volumes.remove(req.params["name"], force=req.query.get_bool("force"))
        return empty(204)

    async def prune(self, req: Request) -> AnyResponse:
        filters = Filters.parse(req.query.get("filters"))
        filters.validate(PRUNE_FILTERS)
        # Before API 1.42 prune took every unused local volume, named ones too.
        all_volumes = _prune_all(filters) or not req.version_at_least(1, 42)
        query = VolumeQuery(labels=filters.values("label"), not_labels=filters.values("label!"))
        deleted, reclaimed = await self.volumes.prune(query, all_volumes=all_volumes)
        return json_response({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})
