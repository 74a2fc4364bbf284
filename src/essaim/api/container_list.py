"""Which containers `GET /containers/json` returns, as dockerd's daemon/list.go decides:
its filters (regex names, id prefixes, ancestors with descendants, ports ...), `before`,
`since`, `limit` and `all`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from essaim.api.container_network_wire import network_names, summary_ports
from essaim.api.filters import Filters
from essaim.api.health_wire import health_filter_value
from essaim.errors import EssaimError, InvalidParameter, NotFound, SystemError_
from essaim.model.container import PAUSED, RESTARTING, RUNNING, STATUSES, Container
from essaim.model.health import HEALTHY, STARTING, UNHEALTHY

LIST_FILTERS = (
    "id", "name", "status", "label", "exited", "ancestor", "before", "since",
    "volume", "network", "health", "isolation", "is-task", "publish", "expose",
)  # fmt: skip
HEALTH_VALUES = (STARTING, HEALTHY, UNHEALTHY, "none")
NEVER_STARTED = "0001-01-01T00:00:00Z"

# An image reference -> the ids of that image and of every image built on it.
ImageFamily = Callable[[str], Awaitable[set[str] | None]]


def _go_slice(values: list[str]) -> str:
    return "[" + " ".join(values) + "]"


def _regex_match(filters: Filters, key: str, value: str) -> bool:
    """moby's Args.Match: no filter, a value equal to `value`, or one found in it as a
    regular expression (a value that does not compile is skipped)."""
    wanted = filters.values(key)
    if not wanted or value in wanted:
        return True
    for pattern in wanted:
        try:
            if re.search(pattern, value):
                return True
        except re.error:
            continue
    return False


def _port_set(filters: Filters, key: str) -> set[str]:
    """`publish=`/`expose=` values: `80`, `80/udp`, `8000-8010/tcp` as `port/proto`."""
    ports: set[str] = set()
    for value in filters.values(key):
        if ":" in value:
            raise SystemError_(f"filter for '{key}' should not contain ':': {value}")
        number, _, proto = value.partition("/")
        proto = proto.split("/", 1)[0] or "tcp"
        start, sep, end = number.partition("-")
        if not (start.isdigit() and (not sep or end.isdigit())):
            raise SystemError_(f"error while looking up for {key} {value}: invalid port range")
        first, last = int(start), int(end) if sep else int(start)
        if last > 65535 or first > last:
            raise SystemError_(f"error while looking up for {key} {value}: invalid port range")
        ports.update(f"{port}/{proto}" for port in range(first, last + 1))
    return ports


def _by_id_or_name(containers: Iterable[Container], value: str) -> Container:
    """`before=`/`since=`: a full id or an exact name, nothing looser (idOrNameFilter)."""
    name = value.removeprefix("/")
    found = [c for c in containers if c.id == value] or [c for c in containers if c.name == name]
    if len(found) != 1:
        raise NotFound(f"No such container: {value}")
    return found[0]


@dataclass
class ContainerSelection:
    """The parsed filters of one listing; `select` walks containers newest first."""

    filters: Filters
    show_all: bool
    limit: int
    exit_codes: list[int] = field(default_factory=list)
    is_task: bool | None = None
    before: Container | None = None
    since: Container | None = None
    # None: no ancestor filter; else the image ids allowed (possibly none).
    images: set[str] | None = None
    publish: set[str] = field(default_factory=set)
    expose: set[str] = field(default_factory=set)

    @classmethod
    async def parse(
        cls,
        filters: Filters,
        *,
        show_all: bool,
        limit: int,
        containers: list[Container],
        image_family: ImageFamily,
    ) -> ContainerSelection:
        """Checked in dockerd's order, so the first bad value reports as it would."""
        filters.validate(LIST_FILTERS)
        exit_codes = []
        for value in filters.values("exited"):
            try:
                exit_codes.append(int(value))
            except ValueError:
                raise SystemError_(f'strconv.Atoi: parsing "{value}": invalid syntax') from None
        for status in filters.values("status"):
            if status not in STATUSES:
                raise InvalidParameter(f"Invalid filter 'status={status}'")
            show_all = True
        is_task = None
        if "is-task" in filters:
            values = filters.values("is-task")
            if "true" in values:
                is_task = True
            elif "false" in values:
                is_task = False
            else:
                raise InvalidParameter(f"Invalid filter 'is-task={_go_slice(values)}'")
        for health in filters.values("health"):
            if health not in HEALTH_VALUES:
                raise InvalidParameter(f"Unrecognised filter value for health: {health}")
        before = since = None
        for value in filters.values("before"):
            before = _by_id_or_name(containers, value)
        for value in filters.values("since"):
            since = _by_id_or_name(containers, value)
        images: set[str] | None = None
        if "ancestor" in filters:
            images = set()
            for ancestor in filters.values("ancestor"):
                # An image that cannot be found matches nothing (dockerd logs it).
                images |= await image_family(ancestor) or set()
        return cls(
            filters, show_all, limit, exit_codes, is_task, before, since, images,
            _port_set(filters, "publish"), _port_set(filters, "expose"),
        )  # fmt: skip

    def select(self, newest_first: list[Container]) -> list[Container]:
        chosen: list[Container] = []
        before, since = self.before, self.since
        for c in self._candidates(newest_first):
            # `before`: skip down to that container (and it too); `since`: stop there.
            if before is not None:
                if c.id == before.id:
                    before = None
                continue
            if since is not None and c.id == since.id:
                break
            if not _running(c) and not self.show_all and self.limit <= 0:
                continue
            if not self._names_and_labels(c):
                continue
            if self.limit > 0 and len(chosen) == self.limit:
                break
            if self._state_and_content(c):
                chosen.append(c)
        return chosen

    def _candidates(self, newest_first: list[Container]) -> list[Container]:
        """With `id=`/`name=`, only containers they name: an id value must be a prefix of
        exactly one id; names are searched among those ids when ids are given."""
        ids, names = self.filters.values("id"), self.filters.values("name")
        if not ids and not names:
            return newest_first
        matches: set[str] = set()
        for value in ids:
            hits = [c.id for c in newest_first if value and c.id.startswith(value)]
            if len(hits) == 1:
                matches.add(hits[0])
        if names:
            matches |= {
                c.id for c in newest_first if (not ids or c.id in matches) and self._name_match(c)
            }
        return [c for c in newest_first if c.id in matches]

    def _name_match(self, c: Container) -> bool:
        return _regex_match(self.filters, "name", "/" + c.name) or _regex_match(
            self.filters, "name", c.name
        )

    def _names_and_labels(self, c: Container) -> bool:
        return (
            self._name_match(c)
            and _regex_match(self.filters, "id", c.id)
            # No container of ours is a swarm task.
            and (self.is_task is None or self.is_task is False)
            and self.filters.match_labels(c.config.labels)
        )

    def _state_and_content(self, c: Container) -> bool:
        f = self.filters
        if self.exit_codes and (
            _running(c)
            or c.state.started_at == NEVER_STARTED
            or c.state.exit_code not in self.exit_codes
        ):
            return False
        if not _regex_match(f, "status", c.state.status):
            return False
        if not f.match_one("health", health_filter_value(c)):
            return False
        if "volume" in f and not any(_mounts_volume(c, v) for v in f.values("volume")):
            return False
        if self.images is not None and c.image_id not in self.images:
            return False
        if "network" in f and not any(v in network_names(c) for v in f.values("network")):
            return False
        return not (self.publish or self.expose) or self._port_match(c)

    def _port_match(self, c: Container) -> bool:
        for port in summary_ports(c):
            public = f"{port.get('PublicPort', 0)}/{port['Type']}"
            private = f"{port['PrivatePort']}/{port['Type']}"
            if public in self.publish or private in self.expose:
                return True
        return False


def _running(c: Container) -> bool:
    # dockerd's State.Running, which a paused or restarting container also has.
    return c.state.status in (RUNNING, PAUSED, RESTARTING)


def _mounts_volume(c: Container, value: str) -> bool:
    """dockerd's `volume` filter: a mount's destination, or its volume name (a bind's
    source when it has no name)."""
    return any(value in (p.destination, p.name or p.source) for p in c.mount_points)


def image_family_of(
    get_id: Callable[[str], Awaitable[str]], children: Callable[[str], Awaitable[list[str]]]
) -> ImageFamily:
    """An `ImageFamily` over the image service's lookups."""

    async def family(ref: str) -> set[str] | None:
        try:
            root = await get_id(ref)
        except EssaimError:
            return None
        found: set[str] = set()
        pending = [root]
        while pending:
            image_id = pending.pop()
            if image_id not in found:
                found.add(image_id)
                pending.extend(await children(image_id))
        return found

    return family
