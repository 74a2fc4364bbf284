"""The distribution service the API calls: pull, push, login and the registry-side
inspect of `docker service create`, sharing the daemon's registry settings.
"""

from __future__ import annotations

from typing import Any

from essaim.errors import EssaimError
from essaim.image import oci
from essaim.image.distribution import errors, login, manifests
from essaim.image.distribution.blobs import BlobFetches
from essaim.image.distribution.client import RegistryClient, scope
from essaim.image.distribution.credentials import Credentials
from essaim.image.distribution.hosts import RegistryHosts
from essaim.image.distribution.manifests import config_platform
from essaim.image.distribution.progress import Emit
from essaim.image.distribution.pull import Puller, PullTarget
from essaim.image.distribution.push import Pusher, PushTarget
from essaim.image.distribution.retry import RetryPolicy
from essaim.image.distribution.sources import BlobSources
from essaim.image.reference import Reference
from essaim.image.service import ImageService
from essaim.model.image import Image
from essaim.store.base import Store
from essaim.store.events import EventBus


class DistributionService:
    def __init__(
        self,
        images: ImageService,
        store: Store,
        events: EventBus,
        hosts: RegistryHosts,
        download_retry: RetryPolicy | None = None,
    ) -> None:
        self.hosts = hosts
        self.images = images
        self.sources = BlobSources(store)
        self._puller = Puller(
            images, hosts, self.sources, BlobFetches(), download_retry or RetryPolicy()
        )
        self._pusher = Pusher(images, hosts, self.sources, events)

    async def pull(self, target: PullTarget, emit: Emit) -> None:
        await self._puller.pull(target, emit)

    async def local_image(self, ref: Reference) -> Image | None:
        """The local image `ref` names, if any (a name alone means every tag: none)."""
        if ref.tag is None and ref.digest is None:
            return None
        try:
            return await self.images.get(ref.normalized())
        except EssaimError:
            return None

    async def push(self, target: PushTarget, emit: Emit) -> None:
        await self._pusher.push(target, emit)

    async def login(self, credentials: Credentials) -> tuple[str, str]:
        return await login.login(self.hosts, credentials)

    async def inspect(self, ref: Reference, credentials: Credentials) -> dict[str, Any]:
        """`GET /distribution/{name}/json`: the manifest's descriptor and the platforms
        it offers (an index's entries, or the config's platform)."""
        try:
            async with RegistryClient(self.hosts, ref.domain, credentials) as client:
                scopes = [scope(ref.path, "pull")]
                fetched = await manifests.fetch(
                    client, ref.path, ref.digest or ref.tag or "latest", scopes
                )
                if fetched.is_index:
                    found = [p for p, _ in manifests.index_entries(fetched.data)]
                    platforms = [p.wire() for p in found if p is not None and p.os != "unknown"]
                else:
                    parsed = oci.parse_manifest(fetched.data)
                    response = await client.request(
                        "GET", f"/v2/{ref.path}/blobs/{parsed.config.digest}", scopes=scopes
                    )
                    await client.check(response, 200)
                    platform = config_platform(response.content)
                    platforms = [platform.wire()] if platform is not None else []
        except Exception as exc:
            raise errors.pull_error(exc, ref.familiar_name(), ref.familiar()) from None
        return {"Descriptor": fetched.descriptor().encode(), "Platforms": platforms}
