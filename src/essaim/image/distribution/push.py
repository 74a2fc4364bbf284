"""`docker push`: each tag's image as a manifest of compressed layers (the pulled
manifest as it is, or a Docker schema 2 one over gzipped local layers), its blobs
skipped, mounted from a sibling repository or uploaded, then the manifest put.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass

from essaim.errors import EssaimError, SystemError_
from essaim.image import oci
from essaim.image.distribution import upload
from essaim.image.distribution.client import RegistryClient, scope
from essaim.image.distribution.compress import gzip_blob
from essaim.image.distribution.credentials import NONE as NO_CREDENTIALS
from essaim.image.distribution.credentials import Credentials
from essaim.image.distribution.hosts import RegistryHosts
from essaim.image.distribution.progress import Emit, Meter, plain, status
from essaim.image.distribution.pull import gather_or_cancel, short
from essaim.image.distribution.sources import BlobSources
from essaim.image.reference import Reference
from essaim.image.service import ImageService
from essaim.model.image import Image
from essaim.store.events import EventBus

CONCURRENT_UPLOADS = 5  # dockerd's max-concurrent-uploads
COMPRESSED = frozenset({oci.OCI_LAYER_GZIP, oci.OCI_LAYER_ZSTD, oci.DOCKER_LAYER_GZIP})


@dataclass(frozen=True, slots=True)
class PushTarget:
    ref: Reference  # with a tag, or without for every tag of the repository
    credentials: Credentials = NO_CREDENTIALS


@dataclass(frozen=True, slots=True)
class Layer:
    diff_id: str
    blob: oci.Descriptor


@dataclass(frozen=True, slots=True)
class Plan:
    """What goes up for one image: its layers (bottom first), config and manifest."""

    layers: list[Layer]
    config: oci.Descriptor
    manifest: bytes
    media_type: str


def docker_manifest(config: oci.Descriptor, layers: list[oci.Descriptor], media_type: str) -> bytes:
    """As distribution's schema2 package marshals it (three-space indent), so the same
    image pushed by dockerd and by us can get the same digest."""
    config_type = oci.DOCKER_CONFIG if media_type == oci.DOCKER_MANIFEST else oci.OCI_CONFIG

    def descriptor(media: str, d: oci.Descriptor) -> dict[str, object]:
        return {"mediaType": media, "size": d.size, "digest": d.digest}

    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(config_type, config),
        "layers": [descriptor(layer.media_type, layer) for layer in layers],
    }
    return json.dumps(doc, indent=3).encode()


class Pusher:
    def __init__(
        self, images: ImageService, hosts: RegistryHosts, sources: BlobSources, events: EventBus
    ) -> None:
        self.images = images
        self.hosts = hosts
        self.sources = sources
        self.events = events

    async def tags_to_push(self, ref: Reference) -> list[Reference]:
        """The references to push; Docker's errors when there are none. Raised after
        the first line is out, as dockerd does."""
        named = ref.name_only()
        local = [
            r
            for image in await self.images.list()
            for r in (Reference(named.domain, named.path, t.rsplit(":", 1)[-1])
                      for t in image.repo_tags if t.rsplit(":", 1)[0] == named.name)
        ]  # fmt: skip
        if not local:
            raise SystemError_(
                f"An image does not exist locally with the tag: {named.familiar_name()}"
            )
        if ref.tag is None:
            return sorted(local, key=lambda r: r.tag or "")
        if ref not in local:
            raise SystemError_(f"tag does not exist: {ref.familiar()}")
        return [ref]

    async def push(self, target: PushTarget, emit: Emit) -> None:
        ref = target.ref
        emit(plain(f"The push refers to repository [{ref.name}]"))
        tags = await self.tags_to_push(ref)
        async with RegistryClient(self.hosts, ref.domain, target.credentials) as client:
            for tagged in tags:
                image = await self.images.get(tagged.normalized())
                await self._push_one(client, tagged, image, emit)

    async def _push_one(
        self, client: RegistryClient, ref: Reference, image: Image, emit: Emit
    ) -> None:
        scopes = [scope(ref.path, "pull,push")]
        for layer_diff in reversed(image.diff_ids):
            emit(status("Preparing", short(layer_diff)))
        plan = await self._plan(image)
        top_first = list(reversed(plan.layers))
        for layer in top_first[CONCURRENT_UPLOADS:]:
            emit(status("Waiting", short(layer.diff_id)))
        slots = asyncio.Semaphore(CONCURRENT_UPLOADS)

        async def one(layer: Layer) -> None:
            async with slots:
                await self._push_blob(client, ref, layer, scopes, emit)

        done: set[str] = set()
        jobs = []
        for layer in top_first:
            if layer.blob.digest not in done:
                done.add(layer.blob.digest)
                jobs.append(one(layer))
        await gather_or_cancel(jobs)
        if not await upload.exists(client, ref.path, plan.config.digest, scopes):
            location = await upload.start(client, ref.path, scopes)
            await upload.send(client, self.images.content, location, plan.config, scopes)
        response = await client.request(
            "PUT", f"/v2/{ref.path}/manifests/{ref.tag}", scopes=scopes,
            headers={"Content-Type": plan.media_type}, content=plan.manifest,
        )  # fmt: skip
        await client.check(response, 201)
        digest = "sha256:" + hashlib.sha256(plan.manifest).hexdigest()
        emit(plain(f"{ref.tag}: digest: {digest} size: {len(plan.manifest)}"))
        emit(
            {
                "progressDetail": {},
                "aux": {"Tag": ref.tag, "Digest": digest, "Size": len(plan.manifest)},
            }
        )
        await self._record(ref, image, plan, digest)

    async def _push_blob(
        self, client: RegistryClient, ref: Reference, layer: Layer, scopes: list[str], emit: Emit
    ) -> None:
        ident = short(layer.diff_id)
        blob = layer.blob
        if await upload.exists(client, ref.path, blob.digest, scopes):
            emit(status("Layer already exists", ident))
            await self.sources.record(blob.digest, repository=ref.name)
            return
        location: str | None = None
        source = await self.sources.get(blob.digest)
        for repository in reversed(source.repositories if source else []):
            domain, _, path = repository.partition("/")
            if domain != ref.domain or path == ref.path:
                continue
            try:
                location = await upload.mount(client, ref.path, blob.digest, path, scopes)
            except EssaimError:
                continue  # no pull access there, say: upload it instead
            if location is None:
                emit(status(f"Mounted from {path}", ident))
                await self.sources.record(blob.digest, repository=ref.name)
                return
            break
        if location is None:
            location = await upload.start(client, ref.path, scopes)
        meter = Meter(emit, "Pushing", ident, blob.size)
        await upload.send(client, self.images.content, location, blob, scopes, meter.advance)
        meter.finish()
        emit(status("Pushed", ident))
        await self.sources.record(blob.digest, repository=ref.name)

    async def _plan(self, image: Image) -> Plan:
        """The manifest to push: the image's own when its layers are compressed blobs we
        hold; else one over gzipped layers, as dockerd builds it."""
        content = self.images.content
        loop = asyncio.get_running_loop()
        types = list(image.layer_media_types) or [oci.OCI_LAYER] * len(image.layer_digests)
        if image.manifest_digest and all(t in COMPRESSED for t in types):
            try:
                data = await loop.run_in_executor(None, content.read, image.manifest_digest)
                manifest = oci.parse_manifest(data)
            except EssaimError:
                manifest = None
            if (
                manifest is not None
                and all(
                    [
                        await loop.run_in_executor(None, content.has, d.digest)
                        for d in manifest.layers
                    ]
                )
                and len(manifest.layers) == len(image.diff_ids)
            ):
                layers = [
                    Layer(d, blob) for d, blob in zip(image.diff_ids, manifest.layers, strict=True)
                ]
                return Plan(layers, manifest.config, data, manifest.media_type)
        layers = []
        for diff_id, digest, media_type in zip(
            image.diff_ids, image.layer_digests, types, strict=True
        ):
            if media_type in COMPRESSED:
                size = await loop.run_in_executor(None, content.size, digest)
                layers.append(Layer(diff_id, oci.Descriptor(media_type, digest, size)))
            else:
                layers.append(Layer(diff_id, await self._gzipped(diff_id, digest)))
        zstd = any(layer.blob.media_type == oci.OCI_LAYER_ZSTD for layer in layers)
        media_type = oci.OCI_MANIFEST if zstd else oci.DOCKER_MANIFEST
        retype = oci.oci_layer_type if zstd else _docker_type
        blobs = [
            oci.Descriptor(retype(layer.blob.media_type), layer.blob.digest, layer.blob.size)
            for layer in layers
        ]
        config_size = await loop.run_in_executor(None, content.size, image.id)
        config = oci.Descriptor(oci.DOCKER_CONFIG, image.id, config_size)
        layers = [Layer(layer.diff_id, blob) for layer, blob in zip(layers, blobs, strict=True)]
        return Plan(layers, config, docker_manifest(config, blobs, media_type), media_type)

    async def _gzipped(self, diff_id: str, digest: str) -> oci.Descriptor:
        """The gzip blob of an uncompressed layer: one made before, or made now."""
        content = self.images.content
        loop = asyncio.get_running_loop()
        for known, source in await self.sources.blobs_of(diff_id):
            if source.media_type in (oci.DOCKER_LAYER_GZIP, oci.OCI_LAYER_GZIP) and (
                await loop.run_in_executor(None, content.has, known)
            ):
                size = await loop.run_in_executor(None, content.size, known)
                return oci.Descriptor(oci.DOCKER_LAYER_GZIP, known, size)
        gz, size = await loop.run_in_executor(None, gzip_blob, content, digest)
        await self.sources.record(gz, diff_id=diff_id, media_type=oci.DOCKER_LAYER_GZIP)
        return oci.Descriptor(oci.DOCKER_LAYER_GZIP, gz, size)

    async def _record(self, ref: Reference, image: Image, plan: Plan, digest: str) -> None:
        """`repo@digest` added to the image's RepoDigests; where its config now is."""
        await self.sources.record(plan.config.digest, repository=ref.name)
        by_digest = Reference(ref.domain, ref.path, None, digest)
        # The pushed manifest describes this very image: only the name is new.
        await self.images.add_references(image.id, [by_digest])
        attributes = dict(image.config.labels)
        attributes["name"] = ref.familiar()
        self.events.publish("image", "push", ref.familiar(), attributes)


def _docker_type(media_type: str) -> str:
    return {
        oci.OCI_LAYER_GZIP: oci.DOCKER_LAYER_GZIP,
        oci.OCI_LAYER: oci.DOCKER_LAYER,
    }.get(media_type, media_type)
