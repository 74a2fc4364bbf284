"""`essaim` entry point: one subcommand per job.

`essaim busybox-image` builds the offline base image into a data root; `essaim
registry` serves an image registry (cli/registry.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from essaim import __version__
from essaim.cli import registry
from essaim.store.lock import DataRootBusy, DataRootLock


async def _add_busybox(data_root: Path, quiet: bool) -> None:
    os.makedirs(data_root, mode=0o711, exist_ok=True)
    lock = DataRootLock(data_root)
    try:
        lock.acquire()
    except DataRootBusy as exc:
        # The running daemon owns the root; only look, never write or clean behind it.
        await _check_busybox(data_root, exc, quiet)
        return
    try:
        await _build_busybox(data_root, quiet)
    finally:
        lock.release()


async def _check_busybox(data_root: Path, busy: DataRootBusy, quiet: bool) -> None:
    from essaim.image.busybox import TAG
    from essaim.image.reference import parse_tagged
    from essaim.image.service import TAGS
    from essaim.store import SqliteStore

    store = SqliteStore(data_root / "state.db")
    try:
        present = await store.get(TAGS, parse_tagged(TAG).normalized()) is not None
    finally:
        await store.close()
    if not present:
        raise SystemExit(f"essaim: {busy}; stop it to build {TAG}")
    if not quiet:
        print(f"{TAG} present ({busy})")


async def _build_busybox(data_root: Path, quiet: bool) -> None:
    from essaim.image.busybox import ensure_busybox_image
    from essaim.image.service import ImageService
    from essaim.store import SqliteStore
    from essaim.store.events import EventBus

    store = SqliteStore(data_root / "state.db")
    executor = ThreadPoolExecutor(max_workers=2)
    try:
        images = ImageService(data_root, store, EventBus(), executor)
        await images.load()
        image = await ensure_busybox_image(images)
        if not quiet:
            print(f"busybox:latest {image.id}")
    finally:
        await store.close()
        executor.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="essaim", description="essaim command line")
    parser.add_argument("--version", action="version", version=f"essaim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    bb = sub.add_parser(
        "busybox-image", help="build busybox:latest from the host's busybox-static into a data root"
    )
    bb.add_argument("--data-root", default="/var/lib/essaim")
    bb.add_argument("-q", "--quiet", action="store_true")
    registry.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "busybox-image":
        asyncio.run(_add_busybox(Path(args.data_root), args.quiet))
    elif args.command == "registry":
        sys.exit(registry.run(args))
    else:  # pragma: no cover - argparse rejects unknown commands
        parser.error(f"unknown command {args.command}")
    sys.exit(0)


if __name__ == "__main__":  # `python -m essaim.cli.main`: the registry image's entrypoint
    main()
