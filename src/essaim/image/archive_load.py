"""`docker load`: the uploaded archive read and checked (see `load`), each image made
from its stored blobs, then named; all or nothing, and moby's lines to report it.

A failure at any step takes back what this load added (images, blobs) before the error
goes out: no image, tag or blob of a bad archive stays behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

from essaim.image import ingest, oci
from essaim.image.distribution.progress import Emit, Meter
from essaim.image.load import LoadItem, StagedArchive, make_staging, remove_staging
from essaim.image.service import ImageService


def _unpack_and_read(staged: StagedArchive, body: Path) -> list[LoadItem]:
    staged.unpack(body)
    return staged.read()


def _loading(emit: Emit) -> ingest.LayerReading:
    """moby's `Loading layer` progress for each layer unpacked: the offset read in its
    file against the file's size, under the diff id's short form. Called from the
    executor thread that unpacks: `emit` must be safe there."""

    def reading(layer: oci.Descriptor, diff_id: str) -> Callable[[int], None]:
        meter = Meter(emit, "Loading layer", diff_id.removeprefix("sha256:")[:12], layer.size)

        def at(offset: int) -> None:
            meter.advance(offset - meter.current)
            if offset >= layer.size:
                meter.finish()

        return at

    return reading


async def load_archive(
    images: ImageService, chunks: AsyncIterator[bytes], progress: Emit | None = None
) -> list[str]:
    """Load the archive the request body carries; the lines moby prints for it.
    `progress` is given moby's `Loading layer` messages as each layer is unpacked."""
    body = await images.receive_upload(chunks)
    staging = await images.run_blocking(make_staging, images.content)
    staged = StagedArchive(staging, images.content)
    added: list[str] = []
    try:
        items = await images.run_blocking(_unpack_and_read, staged, body)
        for item in items:
            existed = images.get_cached(item.config_digest) is not None
            image = await images.add_from_content(
                item.config_digest, item.layers, manifest_digest=item.manifest_digest,
                event="load", reading=_loading(progress) if progress is not None else None,
            )  # fmt: skip
            if not existed:
                added.append(image.id)
    except BaseException:
        await _take_back(images, added, staged.new_blobs)
        raise
    finally:
        await images.run_blocking(ingest.unlink_quietly, body)
        await images.run_blocking(remove_staging, staging)
    # Blobs read but not kept (an xz layer decompressed, an unused manifest) go now.
    kept = {b for item in items for b in (item.config_digest, item.manifest_digest)}
    kept.update(layer.digest for item in items for layer in item.layers)
    await images.discard_blobs([b for b in staged.new_blobs if b not in kept])
    return await _name(images, items)


async def _take_back(images: ImageService, added: list[str], blobs: list[str]) -> None:
    """Remove the images this load made and the blobs it stored that nothing uses."""
    for image_id in reversed(added):
        await images.remove(image_id, force=True, prune=False, in_use_by=lambda _: ())
    await images.discard_blobs(blobs)


async def _name(images: ImageService, items: list[LoadItem]) -> list[str]:
    """Tag the loaded images as the archive names them, in its order; moby's lines,
    with its notice when a name is taken from another image."""
    lines: list[str] = []
    for item in items:
        for ref in item.refs:
            previous = images.get_cached(ref.normalized())
            if previous is not None and previous.id != item.config_digest:
                lines.append(
                    f"The image {ref.familiar()} already exists, renaming the old one with ID "
                    f"{previous.id} to empty string"
                )
            await images.tag(item.config_digest, ref.name, ref.tag)
            lines.append(f"Loaded image: {ref.familiar()}")
        if not item.refs:
            lines.append(f"Loaded image ID: {item.config_digest}")
    return lines
