"""`POST /containers/{id}/update`: the wire UpdateConfig (resource fields at the top
level, and RestartPolicy) translated for the engine's updater; `{"Warnings": [...]}` back.
"""

from __future__ import annotations

from typing import Any

from essaim.api.request import Request
from essaim.api.responses import AnyResponse, json_response
from essaim.api.router import Router
from essaim.engine.update import ContainerUpdater, ResourceUpdate
from essaim.errors import InvalidParameter
from essaim.model.container import RestartPolicy


def _int(body: dict[str, Any], field: str) -> int:
    value = body.get(field)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(f"json: cannot unmarshal {field}: expected an integer")
    return value


def _str(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidParameter(f"json: cannot unmarshal {field}: expected a string")
    return value


def parse_update(body: Any) -> ResourceUpdate:
    """The CLI and the SDK send every resource field (zero for "unchanged"); PidsLimit
    only when asked, and RestartPolicy with an empty Name when not."""
    if not isinstance(body, dict):
        raise InvalidParameter("json: cannot unmarshal UpdateConfig: expected an object")
    restart = body.get("RestartPolicy") or {}
    if not isinstance(restart, dict):
        raise InvalidParameter("json: cannot unmarshal RestartPolicy: expected an object")
    name = _str(restart, "Name")
    pids = body.get("PidsLimit")
    return ResourceUpdate(
        memory=_int(body, "Memory"),
        memory_swap=_int(body, "MemorySwap"),
        memory_reservation=_int(body, "MemoryReservation"),
        nano_cpus=_int(body, "NanoCpus"),
        cpu_shares=_int(body, "CpuShares"),
        cpu_quota=_int(body, "CpuQuota"),
        cpu_period=_int(body, "CpuPeriod"),
        cpuset_cpus=_str(body, "CpusetCpus"),
        cpuset_mems=_str(body, "CpusetMems"),
        pids_limit=None if pids is None else _int(body, "PidsLimit"),
        restart_policy=RestartPolicy(name, _int(restart, "MaximumRetryCount")) if name else None,
    )


class ContainerUpdateAPI:
    def __init__(self, updater: ContainerUpdater) -> None:
        self.updater = updater

    def register(self, router: Router) -> None:
        router.post("/containers/{id}/update", self.update)

    async def update(self, req: Request) -> AnyResponse:
        update = parse_update(await req.json(allow_empty=False))
        warnings = await self.updater.update(req.params["id"], update)
        return json_response({"Warnings": warnings})
