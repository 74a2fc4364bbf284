"""Every container by id and by name: the records in the store and their in-memory index,
references resolved as dockerd does, name reservation, and one lock per container.
"""

from __future__ import annotations

import asyncio

from essaim.engine.naming import generated_name, validate_name
from essaim.errors import Conflict, InvalidParameter, NotFound
from essaim.model.container import Container
from essaim.store import Collection, Store


class ContainerIndex:
    def __init__(self, store: Store) -> None:
        self.records: Collection[Container] = Collection(store, "containers", Container)
        self._by_id: dict[str, Container] = {}
        self._names: dict[str, str] = {}
        # Held across a container's state changes (start, exit, restart, removal).
        self._locks: dict[str, asyncio.Lock] = {}

    async def load(self) -> None:
        for container in await self.records.list():
            self._by_id[container.id] = container
            self._names[container.name] = container.id

    def get(self, ref: str) -> Container:
        """By full id, name (with or without /), or unique id prefix, as dockerd."""
        if not ref:
            raise NotFound("No such container: ")
        found = self._by_id.get(ref)
        if found is not None:
            return found
        cid = self._names.get(ref.lstrip("/"))
        if cid is not None:
            return self._by_id[cid]
        matches = [c for cid, c in self._by_id.items() if cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def find(self, cid: str) -> Container | None:
        """By full id only; None once it is removed."""
        return self._by_id.get(cid)

    def __contains__(self, cid: str) -> bool:
        return cid in self._by_id

    def all(self) -> list[Container]:
        return list(self._by_id.values())

    def newest_first(self) -> list[Container]:
        return sorted(self._by_id.values(), key=lambda c: c.created, reverse=True)

    def check_name(self, name: str) -> str:
        """A name asked for at create, without its slash; Docker's 400 or 409 if it
        cannot be had."""
        name = validate_name(name)
        if name in self._names:
            raise self._name_conflict(name)
        return name

    def reserve_name(self, name: str | None, cid: str) -> str:
        """Give `name` (checked) or a generated one to `cid`, at once: two creates asking
        for one name cannot both have it."""
        if name is None:
            name = generated_name()
            while name in self._names:
                name = generated_name()
        elif name in self._names:
            raise self._name_conflict(name)
        self._names[name] = cid
        return name

    def move_name(self, container: Container, name: str) -> None:
        """Give `container` the name `name` (checked by the caller) and free its old one."""
        self._names[name] = container.id
        if container.name != name and self._names.get(container.name) == container.id:
            del self._names[container.name]
        container.name = name

    def _name_conflict(self, name: str) -> Conflict:
        return Conflict(
            f'Conflict. The container name "/{name}" is already in use by container '
            f'"{self._names[name]}". You have to remove (or rename) that container '
            "to be able to reuse that name."
        )

    async def save(self, container: Container) -> None:
        await self.records.put(container.id, container)
        self._by_id[container.id] = container

    async def delete_record(self, cid: str) -> None:
        await self.records.delete(cid)

    def forget(self, container: Container) -> None:
        """Drop the container from the index (its record is deleted apart)."""
        self._by_id.pop(container.id, None)
        if self._names.get(container.name) == container.id:
            del self._names[container.name]
        self._locks.pop(container.id, None)

    def lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())
