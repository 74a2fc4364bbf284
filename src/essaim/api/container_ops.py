"""Container endpoints beyond the lifecycle: pause and unpause, rename, top, and
prune; wire parameters in, the engine's answers out in Docker's JSON.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from essaim.api.filters import Filters
from essaim.api.images import filter_time
from essaim.api.request import Request
from essaim.api.responses import AnyResponse, empty, json_response
from essaim.api.router import Router
from essaim.engine.containers import ContainerService
from essaim.engine.pause import Pauser
from essaim.engine.prune import ContainerPruner
from essaim.engine.rename import Renamer
from essaim.engine.top import ps_argv, top
from essaim.errors import Conflict, InvalidParameter
from essaim.model.container import PAUSED, RESTARTING, RUNNING, Container
from essaim.model.rfc3339 import rfc3339_nano
from essaim.runtime.cgroups import ProcessCgroups

PRUNE_FILTERS = ("until", "label", "label!")


def prune_matcher(filters: Filters, now_nano: int) -> Callable[[Mapping[str, str], str], bool]:
    """dockerd's prune filters, on (labels, created): created before `until`, every
    `label` held, and not every `label!` held."""
    filters.validate(PRUNE_FILTERS)
    untils = filters.values("until")
    if len(untils) > 1:
        raise InvalidParameter("more than one until filter specified")
    until = filter_time(untils[0], now_nano) if untils else None

    def select(labels: Mapping[str, str], created: str) -> bool:
        if until is not None and (rfc3339_nano(created) or 0) > until:
            return False
        if not filters.match_labels(labels):
            return False
        return not ("label!" in filters and filters.match_labels(labels, key="label!"))

    return select


def prune_selection(filters: Filters, now_nano: int) -> Callable[[Container], bool]:
    matcher = prune_matcher(filters, now_nano)
    return lambda container: matcher(container.config.labels, container.created)


class ContainerOpsAPI:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        index, events = containers.index, containers.events
        self.pauser = Pauser(index=index, events=events, runtimes=containers.runtimes)
        self.renamer = Renamer(
            index=index, events=events, renamed=containers.networking.sandboxes.rename
        )
        self.pruner = ContainerPruner(containers)

    def register(self, router: Router) -> None:
        r = router
        r.post("/containers/{id}/pause", self.pause)
        r.post("/containers/{id}/unpause", self.unpause)
        r.post("/containers/{id}/rename", self.rename)
        r.get("/containers/{id}/top", self.top)
        r.post("/containers/prune", self.prune)

    async def pause(self, req: Request) -> AnyResponse:
        await self.pauser.pause(req.params["id"])
        return empty(204)

    async def unpause(self, req: Request) -> AnyResponse:
        await self.pauser.unpause(req.params["id"])
        return empty(204)

    async def rename(self, req: Request) -> AnyResponse:
        await self.renamer.rename(req.params["id"], req.query.get("name") or "")
        return empty(204)

    async def top(self, req: Request) -> AnyResponse:
        ps_args = req.query.get("ps_args") or ""
        ps_argv(ps_args)  # refused before the container is looked up, as dockerd
        container = self.containers.get(req.params["id"])
        state = container.state
        if state.status == RESTARTING:
            raise Conflict(
                f"Container {container.id} is restarting, wait until the container is running"
            )
        running = state.status in (RUNNING, PAUSED) and state.pid > 0
        cgroups = ProcessCgroups.of_pid(state.pid) if running else None
        if cgroups is None:
            raise Conflict(f"container {container.id} is not running")
        table = await top(ps_args, cgroups.procs())
        self.containers.events.publish(container, "top")
        return json_response({"Titles": table.titles, "Processes": table.processes})

    async def prune(self, req: Request) -> AnyResponse:
        select = prune_selection(Filters.parse(req.query.get("filters")), time.time_ns())
        report = await self.pruner.prune(select)
        return json_response(
            {"ContainersDeleted": report.deleted or None, "SpaceReclaimed": report.space_reclaimed}
        )
