"""`docker pull`: resolve a tag or digest (an index narrowed to one platform), fetch
the config and the missing layers (three at a time, each verified before it is
committed, retried and resumed as dockerd does), make the image from them, and report
it all in Docker's progress words.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from essaim.errors import EssaimError, SystemError_
from essaim.image import oci
from essaim.image.distribution import errors, manifests
from essaim.image.distribution.blobs import BlobFetches, download, fetch_small
from essaim.image.distribution.client import RegistryClient, scope
from essaim.image.distribution.credentials import NONE as NO_CREDENTIALS
from essaim.image.distribution.credentials import Credentials
from essaim.image.distribution.hosts import RegistryHosts
from essaim.image.distribution.manifests import config_platform
from essaim.image.distribution.progress import Emit, Meter, plain, status, transfer
from essaim.image.distribution.retry import RetryPolicy, countdown_text
from essaim.image.distribution.sources import BlobSources
from essaim.image.platforms import Platform, choose, host
from essaim.image.reference import Reference
from essaim.image.service import ImageService

CONCURRENT_DOWNLOADS = 3  # dockerd's max-concurrent-downloads


def short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


@dataclass(frozen=True, slots=True)
class PullTarget:
    """What to pull: `ref` with a tag or a digest, or none of them for every tag.
    `platform` is None for the host's (then a config of another platform is taken)."""

    ref: Reference
    platform: Platform | None = None
    credentials: Credentials = NO_CREDENTIALS

    @property
    def all_tags(self) -> bool:
        return self.ref.tag is None and self.ref.digest is None


async def gather_or_cancel(jobs: list[Coroutine[Any, Any, None]]) -> None:
    """Run `jobs` together; the first failure cancels the others and is raised as is
    (not in an exception group: it is what the user is told)."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class Puller:
    def __init__(
        self,
        images: ImageService,
        hosts: RegistryHosts,
        sources: BlobSources,
        fetches: BlobFetches,
        retry: RetryPolicy,
    ) -> None:
        self.retry = retry
        self.images = images
        self.hosts = hosts
        self.sources = sources
        self.fetches = fetches

    async def pull(self, target: PullTarget, emit: Emit) -> None:
        """Pull and report through `emit`. Failures raise in Docker's words; the
        caller knows from what was emitted whether the stream had begun."""
        ref = target.ref
        familiar_name = ref.familiar_name()
        try:
            async with RegistryClient(self.hosts, ref.domain, target.credentials) as client:
                if target.all_tags:
                    scopes = [scope(ref.path, "pull")]
                    tags = await manifests.list_tags(client, ref.path, scopes)
                    updated = False
                    for tag in tags:
                        updated |= await self._pull_one(client, ref.with_tag(tag), target, emit)
                    shown = familiar_name
                else:
                    updated = await self._pull_one(client, ref, target, emit)
                    shown = ref.familiar()
        except Exception as exc:
            shown_ref = ref.familiar() if not target.all_tags else familiar_name
            raise errors.pull_error(exc, familiar_name, shown_ref) from None
        if updated:
            emit(plain(f"Status: Downloaded newer image for {shown}"))
        else:
            emit(plain(f"Status: Image is up to date for {shown}"))

    async def _pull_one(
        self, client: RegistryClient, ref: Reference, target: PullTarget, emit: Emit
    ) -> bool:
        """One tag or digest; whether its name now points at another image."""
        scopes = [scope(ref.path, "pull")]
        wanted = ref.digest or ref.tag or "latest"
        top = await manifests.fetch(client, ref.path, wanted, scopes)
        emit(plain(f"Pulling from {ref.path}", ref.digest or ref.tag))
        manifest = top
        if top.is_index:
            platform = target.platform or host()
            entries = manifests.index_entries(top.data)
            chosen = choose(platform, entries)
            if chosen is None:
                raise SystemError_(
                    f"no matching manifest for {platform} in the manifest list entries"
                )
            manifest = await manifests.fetch(client, ref.path, chosen.digest, scopes)
            if manifest.is_index:
                raise SystemError_("invalid manifest: an index may not point at an index")
        parsed = oci.parse_manifest(manifest.data)
        content = self.images.content
        config = await fetch_small(client, content, ref.path, parsed.config, scopes, "image config")
        if target.platform is not None and not top.is_index:
            actual = config_platform(config)
            if actual is not None and (actual.os, actual.architecture) != (
                target.platform.os, target.platform.architecture,
            ):  # fmt: skip
                raise SystemError_(
                    f"image with reference {ref.familiar()} was found but does not match "
                    f"the specified platform: wanted {target.platform}, actual: {actual}"
                )
        missing = await self._layers(client, ref, parsed.layers, scopes, emit)
        loop = asyncio.get_running_loop()
        if manifest.digest != top.digest or not await loop.run_in_executor(
            None, content.has, manifest.digest
        ):
            await loop.run_in_executor(None, content.write, manifest.data, manifest.digest)
        named = ref.name_only()
        by_digest = Reference(named.domain, named.path, None, top.digest)
        refs = [by_digest] if ref.digest else [ref, by_digest]
        updated = await self._points_elsewhere(refs[0], parsed.config.digest)
        for layer in missing:
            emit(transfer("Extracting", short(layer.digest), layer.size, layer.size))
        await self.images.add_from_content(
            parsed.config.digest, parsed.layers, manifest_digest=manifest.digest,
            refs=refs, event="pull",
        )  # fmt: skip
        for layer in missing:
            emit(status("Pull complete", short(layer.digest)))
        await self._remember(ref, parsed, config)
        emit(plain(f"Digest: {top.digest}"))
        return updated

    async def _points_elsewhere(self, ref: Reference, image_id: str) -> bool:
        try:
            current = await self.images.get(ref.normalized())
        except EssaimError:
            return True
        return current.id != image_id

    async def _layers(
        self,
        client: RegistryClient,
        ref: Reference,
        layers: tuple[oci.Descriptor, ...],
        scopes: list[str],
        emit: Emit,
    ) -> list[oci.Descriptor]:
        """Fetch what is missing, three at a time, in Docker's words; the layers that
        were missing."""
        content = self.images.content
        loop = asyncio.get_running_loop()
        missing: list[oci.Descriptor] = []
        seen: set[str] = set()
        for layer in layers:
            if layer.digest in seen:
                continue
            seen.add(layer.digest)
            if await loop.run_in_executor(None, content.has, layer.digest):
                emit(status("Already exists", short(layer.digest)))
            else:
                emit(status("Pulling fs layer", short(layer.digest)))
                missing.append(layer)
        for layer in missing[CONCURRENT_DOWNLOADS:]:
            emit(status("Waiting", short(layer.digest)))
        slots = asyncio.Semaphore(CONCURRENT_DOWNLOADS)

        async def one(layer: oci.Descriptor) -> None:
            ident = short(layer.digest)
            async with slots, self.fetches.exclusive(layer.digest):
                if await loop.run_in_executor(None, content.has, layer.digest):
                    emit(status("Download complete", ident))
                    return
                meter = Meter(emit, "Downloading", ident, layer.size)

                def attempt_begins(offset: int) -> None:
                    nonlocal meter
                    # As moby's progress reader: a resumed attempt counts what is left.
                    meter = Meter(emit, "Downloading", ident, layer.size - offset)

                def verifying() -> None:
                    meter.finish()
                    emit(status("Verifying Checksum", ident))

                await download(
                    client, content, ref.path, layer, scopes,
                    policy=self.retry,
                    on_attempt=attempt_begins,
                    on_bytes=lambda n: meter.advance(n),
                    on_verify=verifying,
                    on_wait=lambda seconds: emit(status(countdown_text(seconds), ident)),
                )  # fmt: skip
                emit(status("Download complete", ident))

        await gather_or_cancel([one(layer) for layer in missing])
        return missing

    async def _remember(self, ref: Reference, parsed: oci.Manifest, config: bytes) -> None:
        """Where these blobs came from, for later pushes (skip, mount)."""
        diff_ids = oci.decode_config(config, parsed.config.digest).diff_ids
        repository = ref.name
        await self.sources.record(
            parsed.config.digest, repository=repository, media_type=parsed.config.media_type
        )
        for layer, diff_id in zip(parsed.layers, diff_ids, strict=False):
            await self.sources.record(
                layer.digest, repository=repository, diff_id=diff_id, media_type=layer.media_type
            )
