"""`POST /containers/{id}/update`: the wire UpdateConfig (resource fields at the top
level, and RestartPolicy) translated for the engine's updater; `{"Warnings": [...]}` back.
"""

from __future__ import annotations

from typing import Any

from essaim.api.request import Request
from essaim.api.responses import AnyResponse, json_response
from essaim.api.router import Router
from essaim.api.wire_fields import integer, string
from essaim.engine.update import ContainerUpdater, ResourceUpdate
from essaim.errors import InvalidParameter
from essaim.model.container import RestartPolicy


def parse_update(body: Any) -> ResourceUpdate:
    """The CLI and the SDK send every resource field (zero for "unchanged"); PidsLimit
    only when asked, and RestartPolicy with an empty Name when not."""
    if not isinstance(body, dict):
        raise InvalidParameter("json: cannot unmarshal UpdateConfig: expected an object")
    restart = body.get("RestartPolicy") or {}
    if not isinstance(restart, dict):
        raise InvalidParameter("json: cannot unmarshal RestartPolicy: expected an object")
    name = string(restart.get("Name"), "Name")
    pids = body.get("PidsLimit")
    return ResourceUpdate(
        memory=integer(body.get("Memory"), "Memory"),
        memory_swap=integer(body.get("MemorySwap"), "MemorySwap"),
        memory_reservation=integer(body.get("MemoryReservation"), "MemoryReservation"),
        nano_cpus=integer(body.get("NanoCpus"), "NanoCpus"),
        cpu_shares=integer(body.get("CpuShares"), "CpuShares"),
        cpu_quota=integer(body.get("CpuQuota"), "CpuQuota"),
        cpu_period=integer(body.get("CpuPeriod"), "CpuPeriod"),
        cpuset_cpus=string(body.get("CpusetCpus"), "CpusetCpus"),
        cpuset_mems=string(body.get("CpusetMems"), "CpusetMems"),
        pids_limit=None if pids is None else integer(body.get("PidsLimit"), "PidsLimit"),
        restart_policy=RestartPolicy(
            name, integer(restart.get("MaximumRetryCount"), "MaximumRetryCount")
        )
        if name
        else None,
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
