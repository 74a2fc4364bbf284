"""`GET /system/df` (`docker system df`): images with their shared layers and container
counts, containers with their writable layers, volumes with their use, all layers' size.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

from essaim.api.containers import summary_wire
from essaim.api.images import list_wire
from essaim.api.request import Request
from essaim.api.responses import AnyResponse, json_response
from essaim.api.router import Router
from essaim.api.volumes import volume_wire
from essaim.engine.containers import ContainerService
from essaim.engine.disk_usage import directory_size
from essaim.image.listing import ListQuery
from essaim.image.service import ImageService
from essaim.volume.query import VolumeQuery
from essaim.volume.service import VolumeService


class DiskUsageAPI:
    def __init__(
        self, containers: ContainerService, images: ImageService, volumes: VolumeService
    ) -> None:
        self.containers = containers
        self.images = images
        self.volumes = volumes

    def register(self, router: Router) -> None:
        router.get("/system/df", self.df)

    async def df(self, req: Request) -> AnyResponse:
        listings = await self.images.list_filtered(ListQuery(show_all=True))
        containers = self.containers.list()
        users = Counter(c.image_id for c in containers)
        # Each layer once, by chain id; a layer two images stack is shared by both.
        layer_size: dict[str, int] = {}
        holders: Counter[str] = Counter()
        chains: dict[str, list[str]] = {}
        for listing in listings:
            image = listing.image
            chain_ids, _ = self.images.rootfs_layers(image)
            chains[image.id] = chain_ids
            for chain_id, size in zip(chain_ids, image.layer_sizes, strict=False):
                layer_size[chain_id] = size
                holders[chain_id] += 1
        images_out = []
        for listing in listings:
            wire = list_wire(listing, req.version)
            wire["Containers"] = users[listing.image.id]
            wire["SharedSize"] = sum(
                layer_size[c] for c in chains[listing.image.id] if holders[c] > 1
            )
            images_out.append(wire)
        now = time.time()
        containers_out: list[dict[str, Any]] = []
        for container in containers:
            wire = summary_wire(
                container, now, self.containers.image_shown(container), self.containers.network_id
            )
            wire["SizeRw"], wire["SizeRootFs"] = await self.containers.sizes(container)
            containers_out.append(wire)
        return json_response(
            {
                "LayersSize": sum(layer_size.values()),
                "Images": images_out,
                "Containers": containers_out,
                "Volumes": await self._volumes(),
                "BuildCache": [],
            }
        )

    async def _volumes(self) -> list[dict[str, Any]]:
        out = []
        for volume in self.volumes.find(VolumeQuery()):
            mountpoint = self.volumes.mountpoint(volume.name)
            wire = volume_wire(volume, mountpoint)
            size = await asyncio.get_running_loop().run_in_executor(
                None, directory_size, Path(mountpoint)
            )
            wire["UsageData"] = {"Size": size, "RefCount": len(self.volumes.users(volume.name))}
            out.append(wire)
        return out
