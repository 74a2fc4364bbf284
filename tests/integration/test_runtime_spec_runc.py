"""Generated config.json files run under the real runc on this host.

Each test uses its own runc state root, container id and cgroup parent, and removes them.
"""

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from essaim.runtime.host import HostFacts
from essaim.runtime.spec import RunSpec, build_oci_config

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="runc needs root"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed"),
    pytest.mark.skipif(not Path("/bin/busybox").is_file(), reason="needs /bin/busybox"),
]

RUNC_TIMEOUT = 60


class Sandbox:
    """A bundle directory with a busybox rootfs, a private runc root and a cgroup parent."""

    def __init__(self, base: Path) -> None:
        self.bundle = base / "bundle"
        self.rootfs = self.bundle / "rootfs"
        self.runc_root = base / "runc-state"
        self.cgroup_parent = f"essaim-test-{secrets.token_hex(6)}"
        self.ids: list[str] = []

    def build_rootfs(self) -> None:
        bin_dir = self.rootfs / "bin"
        bin_dir.mkdir(parents=True)
        shutil.copy2("/bin/busybox", bin_dir / "busybox")
        applets = subprocess.run(
            ["/bin/busybox", "--list"], capture_output=True, text=True, check=True
        ).stdout.split()
        for applet in applets:
            if applet != "busybox":  # the list names busybox itself: keep the binary
                (bin_dir / applet).symlink_to("busybox")
        etc = self.rootfs / "etc"
        etc.mkdir()
        (etc / "passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"
        )
        (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")

    def new_id(self) -> str:
        container_id = f"essaim-spec-{secrets.token_hex(8)}"
        self.ids.append(container_id)
        return container_id

    def write_config(self, container_id: str, **fields: Any) -> dict[str, Any]:
        spec = RunSpec(
            container_id=container_id,
            rootfs=str(self.rootfs),
            cgroups_path=f"/{self.cgroup_parent}/{container_id}",
            **fields,
        )
        config: dict[str, Any] = build_oci_config(spec, HostFacts.read())
        (self.bundle / "config.json").write_text(json.dumps(config, indent=2))
        return config

    def runc(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        return subprocess.run(
            ["runc", "--root", str(self.runc_root), *args],
            text=True,
            timeout=RUNC_TIMEOUT,
            stdin=subprocess.DEVNULL,
            **kwargs,
        )

    def run(self, container_id: str) -> subprocess.CompletedProcess[str]:
        """`runc run` in the foreground; runc removes the container when it exits."""
        return self.runc("run", "--bundle", str(self.bundle), container_id)

    def cgroup_dirs(self) -> list[Path]:
        """Our parent cgroup in every hierarchy where it exists (v1 controllers or v2)."""
        root = Path("/sys/fs/cgroup")
        candidates = [root / self.cgroup_parent]
        candidates += [h / self.cgroup_parent for h in root.iterdir() if h.is_dir()]
        return [path for path in candidates if path.is_dir()]

    def cleanup(self) -> None:
        for container_id in self.ids:
            self.runc("kill", container_id, "KILL")
            self.runc("delete", "--force", container_id)
        for parent in self.cgroup_dirs():
            for container_id in self.ids:
                if (parent / container_id).is_dir():
                    (parent / container_id).rmdir()
            parent.rmdir()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path_factory.mktemp("runc-spec"))
    box.build_rootfs()
    try:
        yield box
    finally:
        box.cleanup()
    assert box.cgroup_dirs() == []


def test_default_container_runs_as_root_under_seccomp(sandbox: Sandbox) -> None:
    container_id = sandbox.new_id()
    sandbox.write_config(
        container_id,
        args=["sh", "-c", "id -u; cat /proc/self/status | grep -i seccomp; echo ok"],
    )
    result = sandbox.run(container_id)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "0"
    assert any(line.split() == ["Seccomp:", "2"] for line in lines)
    assert lines[-1] == "ok"


def test_delete_leaves_nothing_behind(sandbox: Sandbox) -> None:
    container_id = sandbox.new_id()
    sandbox.write_config(container_id, args=["sh", "-c", "echo started"])
    log = sandbox.bundle / f"{container_id}.out"
    errors = sandbox.bundle / f"{container_id}.err"
    # Detached without a terminal, runc hands these files to the container and returns;
    # pipes would keep us waiting for the container to close them.
    with log.open("w") as out, errors.open("w") as err:
        run_args = ("run", "--detach", "--bundle", str(sandbox.bundle), container_id)
        created = sandbox.runc(*run_args, stdout=out, stderr=err)
    assert created.returncode == 0, errors.read_text()
    deadline = time.monotonic() + RUNC_TIMEOUT
    while json.loads(sandbox.runc("state", container_id).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline, "container did not stop"
        time.sleep(0.05)
    assert log.read_text() == "started\n"

    deleted = sandbox.runc("delete", container_id)
    assert deleted.returncode == 0, deleted.stderr
    assert sandbox.runc("state", container_id).returncode != 0
    assert not (sandbox.runc_root / container_id).exists()
    for parent in sandbox.cgroup_dirs():
        assert not (parent / container_id).exists(), parent


def test_default_rlimits_are_accepted_by_runc_on_this_host(sandbox: Sandbox) -> None:
    container_id = sandbox.new_id()
    config = sandbox.write_config(container_id, args=["sh", "-c", "ulimit -n; ulimit -Hn"])
    (nofile,) = [r for r in config["process"]["rlimits"] if r["type"] == "RLIMIT_NOFILE"]
    result = sandbox.run(container_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(nofile["soft"]), str(nofile["hard"])]
    assert nofile["hard"] == HostFacts.read().nofile_hard


def test_non_root_user_with_no_new_privileges_and_limits(sandbox: Sandbox) -> None:
    container_id = sandbox.new_id()
    sandbox.write_config(
        container_id,
        args=["sh", "-c", "id -u; id -g; grep -E '^(NoNewPrivs|CapEff)' /proc/self/status"],
        user="nobody",
        security_opt=["no-new-privileges"],
        memory=64 * 1024 * 1024,
        nano_cpus=500_000_000,
        pids_limit=64,
    )
    result = sandbox.run(container_id)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["65534", "65534"]
    assert "NoNewPrivs:\t1" in lines
    assert "CapEff:\t0000000000000000" in lines


def test_privileged_container_runs_without_seccomp(sandbox: Sandbox) -> None:
    container_id = sandbox.new_id()
    sandbox.write_config(
        container_id, args=["sh", "-c", "grep -E '^Seccomp:' /proc/self/status"], privileged=True
    )
    result = sandbox.run(container_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Seccomp:", "0"]
