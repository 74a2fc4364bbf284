"""Registries for tests and benchmarks: `essaim registry serve` and Debian's docker-registry
as subprocesses with private roots, the certificates and htpasswd files they use, a slow
relay to cut a transfer midway, and small OCI image layouts made from bytes for skopeo.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import gzip
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Self

import bcrypt
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.tarballs import layer_tar

VENV_BIN = Path(sys.executable).parent
DOCKER_REGISTRY = Path("/usr/bin/docker-registry")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` (an IPv4 or IPv6 address) now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- registry processes


@dataclass
class RegistryProcess:
    """A registry server subprocess, started and stopped by pid. `root` is its storage;
    its log (and any config) are written beside it, and left to the caller with it.
    `tls` (certificate, key) serves HTTPS; `netns` runs it in that network namespace,
    where `port` must be given. A `with` block runs it; it may be started again."""

    root: Path
    _: KW_ONLY
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port on `host`
    tls: tuple[Path, Path] | None = None
    netns: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        if not self.port:
            if self.netns is not None:
                raise ValueError("a registry in a network namespace needs its port")
            self.port = free_port(self.host)

    @property
    def address(self) -> str:
        """host:port as image references name it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    def beside(self, suffix: str) -> Path:
        """A file of this registry's next to its root: `<root>.log`, `<root>-config.yml`."""
        return self.root.parent / f"{self.root.name}{suffix}"

    @property
    def log_path(self) -> Path:
        return self.beside(".log")

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        argv = self.command()
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"registry exited {self.proc.returncode}:\n{self._log_tail()}")
            if self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"registry did not answer at {self.url}:\n{self._log_tail()}")

    def _answers(self) -> bool:
        if self.netns is not None:
            # Its address is in the namespace only: knock from there.
            probe = subprocess.run(
                ["ip", "netns", "exec", self.netns, "bash", "-c",
                 f"exec 3<>/dev/tcp/{self.host}/{self.port}"],
                capture_output=True, check=False,
            )  # fmt: skip
            return probe.returncode == 0
        try:
            # Any answer will do: whether its certificate is trusted is the tests' business.
            httpx.get(f"{self.url}/v2/", timeout=1, verify=False)
            return True
        except httpx.TransportError:
            return False

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Stops it dead (SIGKILL), as a crash would, in the middle of what it serves."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class EssaimRegistry(RegistryProcess):
    """`essaim registry serve`, with more of its flags in `args`."""

    args: list[str] = field(default_factory=list)

    def command(self) -> list[str]:
        tls = (
            []
            if self.tls is None
            else ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        )
        return [
            str(VENV_BIN / "essaim"), "registry", "serve", "--addr", self.address,
            "--root", str(self.root), *tls, *self.args,
        ]  # fmt: skip


@dataclass
class DockerRegistry(RegistryProcess):
    """Debian's docker-registry with a config of ours (never /etc's, never port 5000
    unless told). `users` turns on htpasswd Basic auth; `token` is an `auth.token`
    config section (realm, service, issuer, rootcertbundle)."""

    users: dict[str, str] = field(default_factory=dict)
    token: dict[str, str] | None = None

    def command(self) -> list[str]:
        if self.users and self.token is not None:
            raise ValueError("docker-registry takes one kind of auth: users or token")
        http: dict[str, object] = {"addr": self.address, "secret": "essaim-test"}
        if self.tls is not None:
            http["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root)},
                "delete": {"enabled": True},
            },
            "http": http,
        }
        if self.users:
            htpasswd = write_htpasswd(self.beside("-htpasswd"), self.users)
            config["auth"] = {"htpasswd": {"realm": "basic-realm", "path": str(htpasswd)}}
        elif self.token is not None:
            config["auth"] = {"token": self.token}
        path = self.beside("-config.yml")
        # JSON is YAML: no YAML writer needed.
        path.write_text(json.dumps(config))
        return [str(DOCKER_REGISTRY), "serve", str(path)]


class _Relay:
    """A TCP relay on 127.0.0.1 to `target`: each accepted connection is handed, with
    its upstream connection, to `_relay` (the subclass's way of passing bytes)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._relay(client, upstream)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=2)


def _close(*sockets: socket.socket) -> None:
    for s in sockets:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            s.close()


class ThrottledProxy(_Relay):
    """Slows what flows back to the client to `rate` bytes a second: long enough
    transfers to stop a registry midway."""

    def __init__(self, target: tuple[str, int], rate: int) -> None:
        self.rate = rate
        super().__init__(target)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        for src, dst, slow in ((client, upstream, False), (upstream, client, True)):
            threading.Thread(target=self._pump, args=(src, dst, slow), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, slow: bool) -> None:
        piece = 64 * 1024
        try:
            while not self._stop.is_set():
                data = src.recv(piece)
                if not data:
                    break
                dst.sendall(data)
                if slow:
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            _close(src, dst)


class CuttingProxy(_Relay):
    """Resets the first `cuts` connections once they have carried `after` bytes back
    to the client (a layer download broken midway); the rest pass untouched.
    `requests` keeps what clients sent, to see how they resumed."""

    def __init__(self, target: tuple[str, int], after: int, cuts: int = 1) -> None:
        self.after = after
        self.cuts_left = cuts
        self.cut = 0
        self.requests: list[bytes] = []
        self._lock = threading.Lock()
        super().__init__(target)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
        threading.Thread(target=self._down, args=(upstream, client), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := client.recv(64 * 1024):
                with self._lock:
                    self.requests.append(data)
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.close()

    def _down(self, upstream: socket.socket, client: socket.socket) -> None:
        sent = 0
        try:
            while data := upstream.recv(64 * 1024):
                client.sendall(data)
                sent += len(data)
                if sent >= self.after and self._take_cut():
                    # SO_LINGER 0: the close is a reset, as a dropped link looks. The
                    # shutdown wakes the other thread's recv, or close would wait for it.
                    linger = struct.pack("ii", 1, 0)
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    client.shutdown(socket.SHUT_RD)
                    break
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.close()

    def _take_cut(self) -> bool:
        with self._lock:
            if self.cuts_left <= 0:
                return False
            self.cuts_left -= 1
            self.cut += 1
            return True


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- what they are configured with


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_certificate(
    directory: Path,
    name: str,
    *,
    ec_key: bool = False,
    hosts: tuple[str, ...] = ("127.0.0.1",),
    issuer: tuple[Path, Path] | None = None,
) -> tuple[Path, Path]:
    """A certificate for TLS on `hosts` (IP addresses or names) and its key, as PEM files
    `<name>.crt` and `<name>.key`. Self-signed and a CA (to trust as is, or to sign
    tokens and other certificates) unless `issuer` (certificate, key) signs it."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if ec_key
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, signer = subject, key
    if issuer is not None:
        issuer_name = x509.load_pem_x509_certificate(issuer[0].read_bytes()).subject
        loaded = serialization.load_pem_private_key(issuer[1].read_bytes(), password=None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
        signer = loaded
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False
        )
    if issuer is None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    cert = builder.sign(signer, hashes.SHA256())
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    directory.mkdir(parents=True, exist_ok=True)
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
    # Cost 5, the least bcrypt allows: these passwords guard nothing, and tests wait.
    lines = [
        f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(5)).decode()}"
        for user, pw in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def auth_file(path: Path, registry: str, user: str, password: str) -> Path:
    """A containers-auth.json with one login, for skopeo."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {registry: {"auth": token}}}))
    return path


# -- images for skopeo to copy


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
    return image_of_layers([layer_tar(files) for files in layer_files], compress)


def image_of_layers(tars: list[bytes], compress: bool = True) -> Image:
    """An OCI image of these layer tars (gzipped unless told otherwise)."""
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


def push_image(registry: RegistryProcess, name: str, tag: str, image: Image) -> str:
    """Upload the image's blobs and manifest over the API; its reference."""
    with httpx.Client(base_url=registry.url, verify=False) as client:
        for digest, blob in image.blobs.items():
            posted = client.post(
                f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=blob
            )
            assert posted.status_code == 201, posted.text
        put = client.put(
            f"/v2/{name}/manifests/{tag}",
            content=image.manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert put.status_code == 201, put.text
    return f"{registry.address}/{name}:{tag}"


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
