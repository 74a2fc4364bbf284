"""`docker rename`: a container's name moved to a new one that is free and valid, the
old one released, the record saved and a `rename` event carrying the old name.
"""

from __future__ import annotations

from collections.abc import Callable

from essaim.engine.container_events import ContainerEvents
from essaim.engine.index import ContainerIndex
from essaim.errors import Conflict, InvalidParameter
from essaim.model.container import Container


class Renamer:
    def __init__(
        self,
        *,
        index: ContainerIndex,
        events: ContainerEvents,
        renamed: Callable[[Container], None] = lambda _c: None,
    ) -> None:
        self.index = index
        self.events = events
        self.renamed = renamed  # what else knows it by name (the embedded DNS)

    async def rename(self, ref: str, new_name: str) -> None:
        if not ref or not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        container = self.index.get(ref)
        async with self.index.lock(container.id):
            old = container.name
            if new_name.removeprefix("/") == old:
                raise InvalidParameter(
                    "Renaming a container with the same name as its current name"
                )
            try:
                name = self.index.check_name(new_name)
            except Conflict as exc:
                raise Conflict(f"Error when allocating new name: {exc.message}") from None
            # No await between the check and the move: no other create can take it.
            self.index.move_name(container, name)
            try:
                await self.index.save(container)
            except BaseException:
                self.index.move_name(container, old)
                raise
            self.renamed(container)
        self.events.publish(container, "rename", oldName="/" + old)
