"""A private essaimd for tests: its own data root, exec root, socket and cgroup
parent, the busybox image seeded, and a `docker` CLI pointed at it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker

VENV_BIN = Path(sys.executable).parent
# Where test daemons' networks get their subnets (a host route already there is skipped,
# so daemons side by side take different ones).
TEST_ADDRESS_POOL = "base=10.214.0.0/16,size=24"
# The discard port: nothing listens there on a test machine.
OFFLINE_PROXY = "http://127.0.0.1:9"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def ok(result: Result) -> str:
    """What a command that must succeed wrote to stdout."""
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails(result: Result, *messages: str, code: int = 1) -> None:
    """A command that must fail with `code`, each of `messages` in what it wrote to stderr."""
    assert result.returncode == code, (result.stdout, result.stderr)
    for message in messages:
        assert message in result.stderr, result.stderr


@dataclass
class EssaimDaemon:
    root: Path
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    proc: subprocess.Popen[bytes] | None = None
    log_level: str = "debug"
    extra: list[str] = field(default_factory=list)  # more essaimd flags

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.root / "run"

    @property
    def socket(self) -> Path:
        return self.exec_root / "essaim.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def cgroup_parent(self) -> str:
        return f"essaim-test-{self.tag}"

    @property
    def bridge(self) -> str:
        """The default bridge's interface: one per test daemon."""
        return f"es{self.tag}"

    @property
    def firewall_table(self) -> str:
        """The nftables table essaimd derives from its data root."""
        digest = hashlib.sha256(str(self.data_root.resolve()).encode()).hexdigest()[:12]
        return f"essaim-{digest}"

    @property
    def log_path(self) -> Path:
        return self.root / "essaimd.log"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        env["DOCKER_CONFIG"] = str(self.root / "docker-config")
        env.pop("DOCKER_CONTEXT", None)
        return env

    def daemon_env(self) -> dict[str, str]:
        """essaimd's environment: registry traffic to anywhere but this host goes to a
        proxy on a closed loopback port, so no test ever reaches (or even resolves) a
        registry outside."""
        env = dict(os.environ)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env[name] = OFFLINE_PROXY
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            env.pop(name, None)
        return env

    def seed_busybox(self) -> None:
        subprocess.run(
            [str(VENV_BIN / "essaim"), "busybox-image", "--data-root", str(self.data_root), "-q"],
            check=True,
        )

    def command(self) -> list[str]:
        return [
            str(VENV_BIN / "essaimd"), "-H", self.host,
            "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
            "--cgroup-parent", self.cgroup_parent, "--log-level", self.log_level,
            "--bridge", self.bridge, "--default-address-pool", TEST_ADDRESS_POOL,
            *self.extra,
        ]  # fmt: skip

    def start(self) -> None:
        """Start essaimd with `command()` and wait until it answers."""
        self.exec_root.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            env=self.daemon_env(),
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"essaimd exited: {self.log_path.read_text()[-3000:]}")
            if self.socket.exists() and self.docker("version").returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"essaimd did not answer: {self.log_path.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def docker(self, *args: str, input: str | None = None, timeout: float = 60) -> Result:
        done = subprocess.run(
            ["docker", *args], env=self.env(), capture_output=True, text=True,
            input=input, timeout=timeout,
        )  # fmt: skip
        return Result(done.returncode, done.stdout, done.stderr)

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, timeout=60)

    def cleanup(self) -> None:
        """Remove what this daemon made: its containers (by id), mounts, cgroups, roots."""
        if self.proc is not None and self.proc.poll() is None:
            ids = self.docker("ps", "-aq", "--no-trunc").stdout.split()
            if ids:
                self.docker("rm", "-f", *ids)
            self.docker("network", "prune", "-f")
        self.stop()
        for conmon_pid in self.data_root.glob("containers/*/conmon.pid"):
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(conmon_pid.read_text().strip()), signal.SIGKILL)
        for rootfs in self.data_root.glob("containers/*/rootfs"):
            subprocess.run(["umount", "-l", str(rootfs)], capture_output=True, check=False)
        self._kill_cgroup_processes()
        self._remove_cgroups()
        self._remove_network_leftovers()
        shutil.rmtree(self.root, ignore_errors=True)

    def network_leftovers(self) -> list[str]:
        """What of this daemon's networking is on the host: its default bridge, its
        nftables tables, its pinned namespaces."""
        found = []
        if Path(f"/sys/class/net/{self.bridge}").exists():
            found.append(f"bridge {self.bridge}")
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        found += [line for line in tables.splitlines() if line.endswith(f" {self.firewall_table}")]
        netns = self.exec_root / "netns"
        if netns.is_dir():
            found += [f"netns {p.name}" for p in netns.iterdir()]
        return found

    def _remove_network_leftovers(self) -> None:
        """Left when a test stopped the daemon with containers running (they are dead
        now): their pins, the bridge, the table. All named by this daemon's own ids."""
        netns = self.exec_root / "netns"
        if netns.is_dir():
            for pin in netns.iterdir():
                subprocess.run(["umount", "-l", str(pin)], capture_output=True, check=False)
            subprocess.run(["umount", "-l", str(netns)], capture_output=True, check=False)
        if Path(f"/sys/class/net/{self.bridge}").exists():
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        for family in ("ip", "bridge"):
            subprocess.run(
                ["nft", "delete", "table", family, self.firewall_table],
                capture_output=True, check=False,
            )  # fmt: skip

    def _remove_cgroups(self) -> None:
        """This daemon's cgroup subtree in every hierarchy; a cgroup whose last process
        just died can refuse rmdir (EBUSY) for a moment, so it is tried again."""
        deadline = time.monotonic() + 5
        while True:
            parents = [
                h / self.cgroup_parent
                for h in Path("/sys/fs/cgroup").iterdir()
                if (h / self.cgroup_parent).is_dir()
            ]
            for parent in parents:
                for child in [c for c in parent.iterdir() if c.is_dir()]:
                    with contextlib.suppress(OSError):
                        child.rmdir()
                with contextlib.suppress(OSError):
                    parent.rmdir()
            if not any(p.is_dir() for p in parents) or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def _kill_cgroup_processes(self) -> None:
        """Containers left running on purpose (a test stopped the daemon) or orphaned by
        a killed conmon: every process in this daemon's own cgroup subtree, by pid."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pids = {
                int(line)
                for procs in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent}/**/cgroup.procs")
                for line in procs.read_text().split()
            }
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
