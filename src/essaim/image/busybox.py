"""The built-in `busybox:latest`: a one-layer image made offline from the host's static
busybox (Debian's busybox-static), byte for byte the same on every run.

Same bytes give the same layer digest and, with a fixed `created`, the same image id.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from essaim.errors import NotFound
from essaim.model.image import HistoryEntry, Image, ImageConfig

if TYPE_CHECKING:
    from essaim.image.service import ImageService

BUSYBOX = Path("/bin/busybox")
TAG = "busybox:latest"
CREATED = "2024-01-01T00:00:00Z"
MTIME = 1704067200  # CREATED as a Unix time
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
www-data:x:33:
operator:x:37:
users:x:100:
nogroup:x:65534:
"""
# Directories and their modes; /proc, /sys and /dev exist so the runtime need not make
# mount points in every container's upper directory.
DIRECTORIES = {
    "bin": 0o755,
    "dev": 0o755,
    "etc": 0o755,
    "home": 0o755,
    "proc": 0o755,
    "root": 0o700,
    "sbin": 0o755,
    "sys": 0o755,
    "tmp": 0o1777,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
    "var": 0o755,
    "var/spool": 0o755,
    "var/spool/mail": 0o755,
    "var/www": 0o755,
}
FILES = {"etc/passwd": PASSWD.encode(), "etc/group": GROUP.encode()}


def applets(binary: Path = BUSYBOX) -> list[str]:
    """The applet names `busybox --list` prints (which include `busybox` itself)."""
    listing = subprocess.run(
        [str(binary), "--list"], check=True, capture_output=True, text=True
    ).stdout
    return sorted({name.strip() for name in listing.split() if name.strip()})


def _info(name: str, kind: bytes, mode: int, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = linkname
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def build_busybox_layer(path: Path, binary: Path = BUSYBOX) -> None:
    """Write the busybox rootfs as an uncompressed, deterministic tar at `path`: sorted
    entries, fixed times, root ownership."""
    if not binary.is_file():
        raise NotFound(f"{binary} not found: install the busybox-static package")
    data = binary.read_bytes()
    entries: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}
    for name, mode in DIRECTORIES.items():
        entries[name] = (_info(name, tarfile.DIRTYPE, mode), None)
    for name, text in FILES.items():
        entries[name] = (_info(name, tarfile.REGTYPE, 0o644, len(text)), text)
    entries["bin/busybox"] = (_info("bin/busybox", tarfile.REGTYPE, 0o755, len(data)), data)
    for applet in applets(binary):
        if applet == "busybox" or "/" in applet:
            continue  # the binary itself must not become a link to itself
        name = f"bin/{applet}"
        entries[name] = (_info(name, tarfile.SYMTYPE, 0o777, linkname="busybox"), None)
    with (
        path.open("wb") as out,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in sorted(entries):
            info, content = entries[name]
            tar.addfile(info, io.BytesIO(content) if content is not None else None)


async def ensure_busybox_image(service: ImageService) -> Image:
    """`busybox:latest`, built and added if absent; the same image id every run."""
    try:
        return await service.get(TAG)
    except NotFound:
        pass
    layer = await service.run_blocking(service.content.temp_file, ".busybox.tar")
    try:
        await service.run_blocking(build_busybox_layer, layer)
        config = ImageConfig(env=[PATH_ENV], cmd=["sh"])
        history = [
            HistoryEntry(
                created=CREATED,
                created_by='/bin/sh -c #(nop) ADD busybox-static rootfs in / ; CMD ["sh"]',
            )
        ]
        return await service.add_image(
            [layer], config, created=CREATED, history=history, tags=[TAG]
        )
    finally:
        await service.run_blocking(layer.unlink, missing_ok=True)
