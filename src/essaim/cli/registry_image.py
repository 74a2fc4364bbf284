"""`essaim registry image`: the registry as a container image, made from this host's own
Python (interpreter, shared libraries, standard library) and essaim's runtime packages.

Nothing is downloaded: the root filesystem is packed from files already here and sent
to an Engine API (ours or Docker's) as `docker import` would, with the run settings.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx

import essaim

DEFAULT_TAG = "essaim/registry:latest"
DATA_DIR = "/var/lib/registry"
PORT = 5000
# Where essaim and its dependencies go in the image (on PYTHONPATH).
PACKAGES_DIR = "/opt/essaim/lib"
# Parts of the standard library a server never imports: tests, GUIs, installers.
_STDLIB_SKIP = frozenset(
    {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages",
     "dist-packages", "__pycache__", "pydoc_data", "venv"}
)  # fmt: skip
_LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[([^\]]*)\])?")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def interpreter() -> Path:
    """The real interpreter binary behind `sys.executable` (a venv's is a symlink)."""
    return Path(os.path.realpath(sys.executable))


def shared_libraries(binaries: Iterable[Path]) -> set[Path]:
    """The ELF libraries (and the loader) these binaries need, as `ldd` resolves them."""
    found: set[Path] = set()
    for binary in binaries:
        result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
        for line in result.stdout.splitlines():
            match = _LDD_PATH.search(line)
            if match is not None:
                found.add(Path(match.group(1)))
    return found


def _requirement(text: str) -> tuple[str, set[str], set[str]] | None:
    """(name, extras asked of it, extras its marker needs) of a requirement string."""
    spec, _, marker = text.partition(";")
    match = _REQUIREMENT_NAME.match(spec)
    if match is None:
        return None
    extras = {e.strip().lower() for e in (match.group(2) or "").split(",") if e.strip()}
    needs = {e.lower() for e in _EXTRA_MARKER.findall(marker)}
    return match.group(1), extras, needs


def runtime_distributions(root: str = "essaim") -> list[importlib.metadata.Distribution]:
    """`root` and every installed distribution it needs at run time (its extras'
    requirements only when asked for; other markers are taken as met)."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    pending: list[tuple[str, set[str]]] = [(root, set())]
    while pending:
        name, extras = pending.pop()
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a marker we took as met, for a package not installed here
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen and not extras:
            continue
        seen[key] = dist
        for text in dist.requires or []:
            parsed = _requirement(text)
            if parsed is None:
                continue
            dep, dep_extras, needs = parsed
            if needs and not needs & extras:
                continue
            pending.append((dep, dep_extras))
    return list(seen.values())


def _package_files(dist: importlib.metadata.Distribution) -> Iterator[tuple[Path, str]]:
    for entry in dist.files or []:
        if entry.parts[0] in ("..", "") or "__pycache__" in entry.parts:
            continue  # scripts outside site-packages, compiled caches
        if entry.name.endswith(".pth") or entry.name in ("RECORD", "direct_url.json"):
            continue  # install bookkeeping that names host paths
        source = Path(str(entry.locate()))
        if source.is_file():
            yield source, f"{PACKAGES_DIR}/{entry.as_posix()}"


def _essaim_files() -> Iterator[tuple[Path, str]]:
    """essaim's own modules, wherever they are (an editable install points at src/)."""
    package = Path(essaim.__file__).parent
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            yield path, f"{PACKAGES_DIR}/essaim/{path.relative_to(package).as_posix()}"


def _stdlib_files() -> Iterator[tuple[Path, str]]:
    stdlib = Path(sysconfig.get_paths(vars={"base": sys.base_prefix})["stdlib"])
    for directory, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in _STDLIB_SKIP and not d.startswith("config-"))
        for name in sorted(files):
            if name.startswith("_tkinter"):
                continue  # would bring X11 and Tk's libraries for nothing
            path = Path(directory, name)
            yield path, str(path)


def rootfs_files() -> list[tuple[Path, str]]:
    """Every host file the image holds and its path there: the interpreter, its stdlib
    (at the paths it was built for), the libraries all of them load, and the packages."""
    files = [(interpreter(), str(interpreter()))]
    files += list(_stdlib_files())
    for dist in runtime_distributions():
        if dist.metadata["Name"].lower() != "essaim":
            files += list(_package_files(dist))
    files += list(_essaim_files())
    binaries = [source for source, _ in files if source.suffix == ".so" or ".so." in source.name]
    libraries = shared_libraries([interpreter(), *binaries])
    files += [(lib, str(lib)) for lib in sorted(libraries)]
    return files


def write_rootfs(out_path: Path) -> int:
    """Write the image's root filesystem as a tar to `out_path`; the number of files."""
    added: set[str] = set()
    with tarfile.open(out_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("tmp", "etc", DATA_DIR.strip("/"), "usr/local/bin"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        for name, text in (
            ("etc/passwd", "root:x:0:0:root:/root:/bin/false\n"),
            ("etc/group", "root:x:0:\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("usr/local/bin/python3")
        link.type = tarfile.SYMTYPE
        link.linkname = str(interpreter())
        tar.addfile(link)
        for source, target in rootfs_files():
            arcname = target.lstrip("/")
            if arcname in added:
                continue
            added.add(arcname)
            # The file itself, never a symlink to the host's copy.
            info = tar.gettarinfo(os.path.realpath(source), arcname)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(os.path.realpath(source), "rb") as content:
                tar.addfile(info, content)
    return len(added)


def image_changes(port: int = PORT) -> list[str]:
    """The run settings, as `--change` lines: `docker run IMAGE` serves the registry."""
    entrypoint = ["/usr/local/bin/python3", "-m", "essaim.cli.main", "registry"]
    cmd = ["serve", "--addr", f"0.0.0.0:{port}", "--root", DATA_DIR]
    return [
        "ENV PATH=/usr/local/bin:/usr/bin:/bin",
        f"ENV PYTHONPATH={PACKAGES_DIR}",
        "ENV PYTHONDONTWRITEBYTECODE=1",
        f"ENTRYPOINT {json.dumps(entrypoint)}",
        f"CMD {json.dumps(cmd)}",
        f"VOLUME {DATA_DIR}",
        f"EXPOSE {port}/tcp",
        "STOPSIGNAL SIGTERM",
    ]


def engine_client(host: str) -> httpx.Client:
    """An HTTP client for an Engine API at `host` (`unix:///path` or `tcp://h:p`)."""
    if host.startswith("unix://"):
        transport = httpx.HTTPTransport(uds=host.removeprefix("unix://"))
        return httpx.Client(transport=transport, base_url="http://localhost", timeout=None)
    if host.startswith("tcp://"):
        return httpx.Client(base_url="http://" + host.removeprefix("tcp://"), timeout=None)
    raise SystemExit(f"essaim: unsupported host {host!r}: use unix:// or tcp://")


def import_image(client: httpx.Client, rootfs: Path, tag: str, changes: list[str]) -> str:
    """`docker import` of `rootfs` named `tag` with `changes`; the new image's id."""
    query = "&".join(
        ["fromSrc=-", f"repo={quote(tag, safe='')}"]
        + [f"changes={quote(change, safe='')}" for change in changes]
        + ["message=" + quote("essaim registry image", safe="")]
    )

    def body() -> Iterator[bytes]:
        with rootfs.open("rb") as source:
            while chunk := source.read(1 << 20):
                yield chunk

    response = client.post(
        f"/images/create?{query}",
        content=body(),
        headers={"Content-Type": "application/x-tar"},
    )
    if response.status_code >= 400:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        raise SystemExit(f"essaim: the engine refused the image: {message}")
    image_id = ""
    for line in response.text.splitlines():
        if line.strip():
            message = json.loads(line)
            if "error" in message:
                raise SystemExit(f"essaim: {message['error']}")
            image_id = message.get("status", image_id)
    return image_id


def build_registry_image(host: str, tag: str = DEFAULT_TAG, port: int = PORT) -> str:
    """Pack the root filesystem, import it into the engine at `host` as `tag`; its id."""
    with tempfile.TemporaryDirectory(prefix="essaim-registry-image-") as work:
        rootfs = Path(work, "rootfs.tar")
        write_rootfs(rootfs)
        with engine_client(host) as client:
            return import_image(client, rootfs, tag, image_changes(port))
