"""`essaim registry image` builds the registry as a container image in essaimd, and
`docker run --network host essaim/registry serve --addr ...` serves pushes from skopeo.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

from tests.integration.daemon import VENV_BIN, EssaimDaemon
from tests.integration.registries import free_port, make_image, skopeo, write_oci_layout


def test_registry_runs_as_a_container(daemon: EssaimDaemon, tmp_path: Path) -> None:
    built = subprocess.run(
        [
            str(VENV_BIN / "essaim"),
            "registry",
            "image",
            "-H",
            daemon.host,
            "--tag",
            "essaim/registry:test",
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    port = free_port()
    run = daemon.docker(
        "run", "-d", "--network", "host", "-v", f"regdata-{port}:/var/lib/registry",
        "essaim/registry:test", "serve", "--addr", f"127.0.0.1:{port}",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    container = run.stdout.strip()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/v2/").status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, daemon.docker("logs", container).stderr
                time.sleep(0.1)
        image = make_image([{"f": b"pushed into a containerised registry"}])
        write_oci_layout(tmp_path / "oci", image, "v1")
        pushed = skopeo(
            "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'oci'}:v1",
            f"docker://127.0.0.1:{port}/in/container:1",
        )  # fmt: skip
        assert pushed.returncode == 0, pushed.stderr
        got = httpx.get(f"http://127.0.0.1:{port}/v2/in/container/manifests/1")
        assert got.headers["Docker-Content-Digest"] == image.digest
    finally:
        daemon.docker("rm", "-f", container)
        daemon.docker("volume", "rm", f"regdata-{port}")
