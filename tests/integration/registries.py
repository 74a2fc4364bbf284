"""Registries for tests and benchmarks: `essaim registry serve` and Debian's
docker-registry as subprocesses on 127.0.0.1 free ports with private roots, and small
OCI image layouts made from bytes for skopeo to copy.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

VENV_BIN = Path(sys.executable).parent
DOCKER_REGISTRY = Path("/usr/bin/docker-registry")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _wait_ready(
    url: str, proc: subprocess.Popen[bytes], log: Path, verify: bool | ssl.SSLContext
) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"registry exited {proc.returncode}:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=1, verify=verify)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"registry did not answer at {url}:\n{log.read_text()}")


@dataclass
class RegistryProcess:
    """A registry server subprocess; stopped by pid, its root left to the caller."""

    root: Path
    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    tls: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.addr}"

    @property
    def log(self) -> Path:
        return self.root.parent / f"{self.root.name}.log"

    def command(self) -> list[str]:
        return [
            str(VENV_BIN / "essaim"), "registry", "serve", "--addr", self.addr,
            "--root", str(self.root), *self.args,
        ]  # fmt: skip

    def start(self, verify: bool | ssl.SSLContext = False) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT)
        _wait_ready(f"{self.url}/v2/", self.proc, self.log, verify)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> RegistryProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class DockerRegistry(RegistryProcess):
    """Debian's docker-registry with a config of ours (never /etc's, never port 5000)."""

    auth: dict[str, object] | None = None

    def command(self) -> list[str]:
        config = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root)},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.addr, "secret": "essaim-test"},
        }
        if self.auth is not None:
            config["auth"] = self.auth
        path = self.root.parent / f"{self.root.name}-config.yml"
        # JSON is YAML: no YAML writer needed.
        path.write_text(json.dumps(config))
        return [str(DOCKER_REGISTRY), "serve", str(path)]


@contextlib.contextmanager
def running(registry: RegistryProcess) -> Iterator[RegistryProcess]:
    try:
        registry.start()
        yield registry
    finally:
        registry.stop()


def layer_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@dataclass
class Image:
    manifest: bytes
    config: bytes
    layers: list[bytes]

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def blobs(self) -> dict[str, bytes]:
        return {sha256(b): b for b in [self.config, *self.layers]}


def make_image(layer_files: list[dict[str, bytes]], compress: bool = True) -> Image:
    """An OCI image whose layers hold the given files."""
    tars = [layer_tar(files) for files in layer_files]
    layers = [gzip.compress(t, mtime=0) if compress else t for t in tars]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in tars]},
        }
    ).encode()
    layer_type = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else "")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": layer_type, "digest": sha256(b), "size": len(b)} for b in layers
            ],
        }
    ).encode()
    return Image(manifest, config, layers)


def write_oci_layout(directory: Path, image: Image, tag: str) -> None:
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for digest, data in {**image.blobs, image.digest: image.manifest}.items():
        (blobs / digest.split(":")[1]).write_bytes(data)
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": image.digest,
                "size": len(image.manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (directory / "index.json").write_text(json.dumps(index))


def skopeo(*args: str, auth_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # skopeo reads credentials from here (a missing file is none); keep the host's out.
    env["REGISTRY_AUTH_FILE"] = str(auth_file or Path("/tmp/es-registry-no-auth.json"))
    return subprocess.run(
        ["skopeo", "--insecure-policy", *args], capture_output=True, text=True, env=env, check=False
    )


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def make_certificate(
    directory: Path, name: str, *, ec_key: bool = False, hosts: tuple[str, ...] = ("127.0.0.1",)
) -> tuple[Path, Path]:
    """A self-signed certificate (usable for TLS on `hosts`, and to sign tokens) and
    its key, as PEM files `<name>.crt` and `<name>.key`."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if ec_key
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(h)) for h in hosts]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def write_htpasswd(path: Path, users: dict[str, str]) -> Path:
    import bcrypt

    lines = [
        f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(5)).decode()}"
        for user, pw in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def auth_file(path: Path, registry: str, user: str, password: str) -> Path:
    """A containers-auth.json with one login, for skopeo."""
    import base64

    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {registry: {"auth": token}}}))
    return path
