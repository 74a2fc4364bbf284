"""The Engine API on TCP with TLS and client certificates, driven by the docker CLI's
--tlsverify: a run with its output (the hijacked stream survives the CLI's half-close),
stdin, exit codes, and the refusals (no client certificate, TCP without TLS).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import new_root, running
from tests.integration.daemon import VENV_BIN, EssaimDaemon, Result


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, laid out as
    the docker CLI wants them in DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem)."""
    client = directory / "client"
    client.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem",
             "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA", cwd=directory)  # fmt: skip
    for name, subject, usage, extra in (
        ("server", "/CN=localhost", "serverAuth", "subjectAltName=IP:127.0.0.1\n"),
        ("client", "/CN=client", "clientAuth", ""),
    ):
        (directory / f"{name}.ext").write_text(f"{extra}extendedKeyUsage={usage}\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem",
                 "-out", f"{name}.csr", "-subj", subject, cwd=directory)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                 "-CAcreateserial", "-out", f"{name}-cert.pem", "-days", "2",
                 "-extfile", f"{name}.ext", cwd=directory)  # fmt: skip
    shutil.copy(directory / "ca.pem", client / "ca.pem")
    shutil.copy(directory / "client-cert.pem", client / "cert.pem")
    shutil.copy(directory / "client-key.pem", client / "key.pem")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class TlsDaemon(EssaimDaemon):
    """Listens on its unix socket (which the fixture's helpers use) and on TCP+TLS."""

    port: int = 0

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    def command(self) -> list[str]:
        return [
            *super().command(), "-H", f"tcp://127.0.0.1:{self.port}", "--tlsverify",
            "--tlscacert", str(self.certs / "ca.pem"),
            "--tlscert", str(self.certs / "server-cert.pem"),
            "--tlskey", str(self.certs / "server-key.pem"),
        ]  # fmt: skip

    def tls_docker(self, *args: str, input: str | None = None, cert: bool = True) -> Result:
        env = self.env()
        env["DOCKER_HOST"] = f"tcp://127.0.0.1:{self.port}"
        env["DOCKER_TLS_VERIFY"] = "1"
        env["DOCKER_CERT_PATH"] = str(self.certs / "client")
        if not cert:
            bare = self.root / "bare"
            bare.mkdir(exist_ok=True)
            shutil.copy(self.certs / "ca.pem", bare / "ca.pem")
            env["DOCKER_CERT_PATH"] = str(bare)
            env.pop("DOCKER_TLS_VERIFY")
            env["DOCKER_TLS"] = "1"  # TLS, the server verified, but no client certificate
        done = subprocess.run(
            ["docker", *args], env=env, capture_output=True, text=True, input=input, timeout=60
        )
        return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def tls_daemon() -> Iterator[TlsDaemon]:
    if shutil.which("openssl") is None:
        pytest.skip("missing openssl")

    def prepare(d: TlsDaemon) -> None:
        d.certs.mkdir(parents=True)
        make_certificates(d.certs)

    yield from running(TlsDaemon(new_root(), port=free_port()), prepare)


def test_run_over_tls_prints_its_output_and_exit_code(tls_daemon: TlsDaemon) -> None:
    result = tls_daemon.tls_docker("run", "--rm", "busybox", "echo", "over tls")
    assert (result.returncode, result.stdout) == (0, "over tls\n"), result.stderr
    assert tls_daemon.tls_docker("run", "--rm", "busybox", "sh", "-c", "exit 4").returncode == 4


def test_stdin_over_tls_is_piped_and_closed(tls_daemon: TlsDaemon) -> None:
    result = tls_daemon.tls_docker("run", "-i", "--rm", "busybox", "cat", input="hi\nthere\n")
    assert (result.returncode, result.stdout) == (0, "hi\nthere\n"), result.stderr


def test_client_without_certificate_is_refused(tls_daemon: TlsDaemon) -> None:
    result = tls_daemon.tls_docker("version", "--format", "{{.Server.Version}}", cert=False)
    assert result.returncode != 0
    assert result.stdout.strip() == ""


def test_tcp_without_tls_is_refused_unless_asked_for(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    done = subprocess.run(
        [str(VENV_BIN / "essaimd"), "-H", f"tcp://127.0.0.1:{free_port()}",
         "--data-root", str(tmp_path / "data"), "--exec-root", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode != 0
    assert "without TLS" in done.stderr
