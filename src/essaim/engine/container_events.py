"""Container events as dockerd publishes them on the daemon's bus: the container's
labels, with its image and name, as the event's attributes.
"""

from __future__ import annotations

from essaim.model.container import Container
from essaim.store.events import EventBus


class ContainerEvents:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def publish(self, container: Container, action: str, **extra: str) -> None:
        attributes = dict(container.config.labels)
        attributes.update(image=container.config.image, name=container.name, **extra)
        self.bus.publish("container", action, container.id, attributes)
