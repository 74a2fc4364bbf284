"""Registries that are not on loopback are secure unless listed: verified HTTPS with
the CA from `<certs dir>/<host:port>/ca.crt`, plain HTTP refused with Docker's words
until `--insecure-registry` names it. The daemon and the registries share a network
namespace of the test's own, where the registry's address lives on its loopback device.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import new_root, running
from tests.integration.daemon import EssaimDaemon, fails
from tests.integration.registries import DOCKER_REGISTRY, DockerRegistry, make_certificate

pytestmark = pytest.mark.skipif(not DOCKER_REGISTRY.exists(), reason="needs docker-registry")

# A documentation address (TEST-NET-1), only ever on the loopback device of the test's
# own network namespace: no traffic leaves this host.
ADDRESS = "192.0.2.10"


@dataclass
class NamespacedDaemon(EssaimDaemon):
    netns: str = ""

    def daemon_env(self) -> dict[str, str]:
        return {**super().daemon_env(), "NO_PROXY": ADDRESS}

    def command(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *super().command()]


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"es-dist-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", f"{ADDRESS}/32", "dev", "lo"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def refused_push(daemon: EssaimDaemon, registry: DockerRegistry, why: str) -> str:
    """busybox tagged for `registry`, and a push of it that fails before any upload: the
    reference."""
    ref = f"{registry.address}/bb:v1"
    assert daemon.docker("tag", "busybox", ref).returncode == 0
    fails(daemon.docker("push", ref), f'Get "https://{registry.address}/v2/": {why}')
    return ref


def test_tls_needs_the_ca_and_plain_http_needs_insecure_registry(
    netns: str, tmp_path: Path
) -> None:
    # A CA, and the registry's own certificate that it signed.
    ca = make_certificate(tmp_path / "ca", "essaim test CA", ec_key=True, hosts=())
    served = make_certificate(tmp_path / "ca", "server", ec_key=True, hosts=(ADDRESS,), issuer=ca)
    secure = DockerRegistry(tmp_path / "tls", host=ADDRESS, tls=served, netns=netns, port=5000)
    plain = DockerRegistry(tmp_path / "plain", host=ADDRESS, netns=netns, port=5001)
    certs = tmp_path / "certs.d"
    certs.mkdir()
    daemon = NamespacedDaemon(new_root(), netns=netns, extra=["--certs-dir", str(certs)])
    with secure, plain:
        for d in running(daemon):
            ref = refused_push(d, secure, "tls: failed to verify certificate: x509:")
            (certs / secure.address).mkdir()
            shutil.copy(ca[0], certs / secure.address / "ca.crt")
            pushed = d.docker("push", ref)
            assert pushed.returncode == 0, pushed.stderr
            assert d.docker("rmi", ref).returncode == 0
            assert d.docker("pull", ref).returncode == 0
            http_ref = refused_push(d, plain, "http: server gave HTTP response to HTTPS client")
            d.stop()
            d.extra.extend(["--insecure-registry", plain.address])
            d.start()
            allowed = d.docker("push", http_ref)
            assert allowed.returncode == 0, allowed.stderr
            info = d.client().info()["RegistryConfig"]["IndexConfigs"]
            assert info[plain.address]["Secure"] is False
