"""Creating images from layer tars: each layer stored as an uncompressed blob and
unpacked into its snapshot, the image record built, its config and manifest written.

Everything but `new_image` does I/O; all but `receive` blocks (run it in the executor).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from pathlib import Path

import msgspec

from essaim.errors import InvalidParameter
from essaim.image import archive, oci
from essaim.image.content import ContentStore, HashingReader
from essaim.image.layers import Layers
from essaim.image.platforms import host_platform
from essaim.image.snapshot import Snapshotter
from essaim.model.image import HistoryEntry, Image, ImageConfig

_WRITE_BATCH = 1 << 20
# (layer blob, diff id) -> a callback told the offset reached in the blob as it is read
LayerReading = Callable[[oci.Descriptor, str], Callable[[int], None]]


async def receive(chunks: AsyncIterator[bytes], path: Path, executor: Executor) -> None:
    """Stream a request body to `path`, in batches, off the event loop."""
    loop = asyncio.get_running_loop()
    out = await loop.run_in_executor(executor, open, path, "wb")
    try:
        batch = bytearray()
        async for chunk in chunks:
            batch += chunk
            if len(batch) >= _WRITE_BATCH:
                data = bytes(batch)
                batch.clear()
                await loop.run_in_executor(executor, out.write, data)
        if batch:
            await loop.run_in_executor(executor, out.write, bytes(batch))
    finally:
        await loop.run_in_executor(executor, out.close)


def ingest_layer(
    content: ContentStore,
    snapshots: Snapshotter,
    layers: Layers,
    layer: Path,
    lower_diff_ids: Sequence[str],
) -> tuple[str, int]:
    """Store a layer tar (maybe compressed) as an uncompressed blob and unpack its
    snapshot on top of `lower_diff_ids`; (diff id, unpacked size)."""
    with layer.open("rb") as raw:
        kind = archive.sniff_compression(raw.read(8))
        raw.seek(0)
        if kind == "none" and layer.parent == content.ingest_dir:
            diff_id = None  # already on the blobs' filesystem: hashed and moved below
        else:
            with archive.open_decompressed(raw) as stream:
                diff_id, _ = content.write_stream(stream)
    if diff_id is None:
        # Import bodies are ours to consume; a link keeps `layer` for its owner's cleanup.
        linked = content.temp_file(".layer")
        linked.unlink()
        os.link(layer, linked)
        diff_id, _ = content.adopt(linked)
    chain = oci.chain_ids([*lower_diff_ids, diff_id])[-1]
    try:
        size = snapshots.unpack(chain, content.path(diff_id))
    except BaseException:
        # A layer that cannot be unpacked must not linger as an orphan blob.
        if not layers.layer_blob_used(diff_id):
            content.delete(diff_id)
        raise
    return diff_id, size


def new_image(
    new_layers: Sequence[tuple[str, int]],
    *,
    config: ImageConfig,
    created: str,
    history: list[HistoryEntry],
    base: Image | None = None,
    parent: str = "",
    author: str = "",
    comment: str = "",
    docker_version: str = "",
    container: str = "",
    container_config: ImageConfig | None = None,
) -> Image:
    """The record of an image made of `base`'s layers (if any) and `new_layers` (diff
    id, size), on `base`'s platform or the host's; its id and manifest still unset."""
    diff_ids = list(base.diff_ids) if base else []
    layer_digests = list(base.layer_digests) if base else []
    layer_sizes = list(base.layer_sizes) if base else []
    media_types = [oci.layer_media_type(base, i) for i in range(len(layer_digests))] if base else []
    for diff_id, size in new_layers:
        diff_ids.append(diff_id)
        layer_digests.append(diff_id)
        layer_sizes.append(size)
        media_types.append(oci.OCI_LAYER)
    architecture, variant, os_name = (
        (base.architecture, base.variant, base.os) if base else host_platform()
    )
    return Image(
        id="",
        parent=parent,
        created=created,
        size=sum(layer_sizes),
        layer_sizes=layer_sizes,
        architecture=architecture,
        variant=variant,
        os=os_name,
        author=author,
        comment=comment,
        docker_version=docker_version,
        container=container,
        container_config=container_config,
        config=config,
        diff_ids=diff_ids,
        layer_digests=layer_digests,
        layer_media_types=media_types,
        history=history,
    )


def write_blobs(content: ContentStore, image: Image) -> Image:
    """Write the config and manifest blobs; the image with its id and manifest."""
    image_id = content.write(oci.encode_config(image))
    image = msgspec.structs.replace(image, id=image_id)
    return msgspec.structs.replace(image, manifest_digest=write_manifest(content, image))


def write_manifest(content: ContentStore, image: Image) -> str:
    """Write an OCI manifest for the image's config blob (its id) and layer blobs."""
    layers = [
        oci.Descriptor(
            oci.oci_layer_type(oci.layer_media_type(image, i)), digest, content.size(digest)
        )
        for i, digest in enumerate(image.layer_digests)
    ]
    config = oci.Descriptor(oci.OCI_CONFIG, image.id, content.size(image.id))
    return content.write(oci.encode_manifest(config, layers))


def ensure_on_disk(
    content: ContentStore,
    snapshots: Snapshotter,
    layers: Layers,
    image: Image,
    new_layer_tars: Sequence[Path],
) -> None:
    """Make sure everything `image` needs is on disk, under the image lock, just before
    it is indexed: a concurrent `rmi` of an image sharing a layer may have removed a
    snapshot or blob this image's ingest had just written (no image used it yet).
    Missing snapshots are unpacked from their blob; a missing new layer blob is ingested
    again from its tar; config and manifest are written again (same bytes, same ids)."""
    chains = oci.chain_ids(image.diff_ids)
    first_new = len(image.diff_ids) - len(new_layer_tars)
    for i, chain in enumerate(chains):
        digest = image.layer_digests[i]
        if not content.has(digest):
            if i < first_new:
                raise FileNotFoundError(f"layer {digest} of the base image is gone")
            ingest_layer(content, snapshots, layers, new_layer_tars[i - first_new],
                         image.diff_ids[:i])  # fmt: skip
        elif not snapshots.exists(chain):
            snapshots.unpack(chain, content.path(digest))
    if not (content.has(image.id) and content.has(image.manifest_digest)):
        write_blobs(content, image)


def unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def image_from_content(
    content: ContentStore,
    snapshots: Snapshotter,
    config_digest: str,
    layers: Sequence[oci.Descriptor],
    manifest_digest: str,
    known_layer: Callable[[str, str], bool] = lambda blob, diff_id: blob == diff_id,
    reading: LayerReading | None = None,
) -> Image:
    """The image whose config blob is `config_digest` and whose layer blobs are `layers`
    (all in `content`): each missing snapshot unpacked from its blob, the uncompressed
    bytes checked against the config's diff id; the manifest written when not given.
    A snapshot already there is only trusted for a blob that `known_layer(blob, diff_id)`
    says holds that diff id; any other blob is checked by hashing it uncompressed.
    For each layer it unpacks, `reading(layer, diff_id)` may give a callback that is
    told how far into the layer's blob the unpacking has read."""
    image = oci.decode_config(content.read(config_digest), config_digest)
    if len(layers) != len(image.diff_ids):
        raise InvalidParameter(
            f"invalid image: {len(layers)} layers for {len(image.diff_ids)} diff ids in its config"
        )
    for layer in layers:
        oci.oci_layer_type(layer.media_type)  # refuses what cannot be unpacked here
    chains = oci.chain_ids(image.diff_ids)
    for chain, layer, diff_id in zip(chains, layers, image.diff_ids, strict=True):
        if snapshots.exists(chain) and not known_layer(layer.digest, diff_id):
            # The snapshot came from another blob: this one must still hold the same
            # bytes, or a later push or save would hand out what the config denies.
            with content.open(layer.digest) as raw, archive.open_decompressed(raw) as stream:
                HashingReader(stream).check(diff_id)
    sizes = []
    for chain, layer, diff_id in zip(chains, layers, image.diff_ids, strict=True):
        on_read = None
        if reading is not None and not snapshots.exists(chain):
            on_read = reading(layer, diff_id)
        sizes.append(
            snapshots.unpack(chain, content.path(layer.digest), diff_id=diff_id, on_read=on_read)
        )
    image = msgspec.structs.replace(
        image,
        size=sum(sizes),
        layer_sizes=sizes,
        layer_digests=[layer.digest for layer in layers],
        layer_media_types=[layer.media_type for layer in layers],
    )
    if manifest_digest:
        content.size(manifest_digest)  # NotFound if the caller did not store it
    else:
        manifest_digest = write_manifest(content, image)
    return msgspec.structs.replace(image, manifest_digest=manifest_digest)
