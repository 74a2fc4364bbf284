"""System endpoints: `/_ping`, `/version`, `/info` (`/events` is in api.events).

`/_ping` and `/version` are called by every client process, so they stay cheap.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from essaim import API_VERSION, MIN_API_VERSION, __version__
from essaim.api.request import Request
from essaim.api.responses import AnyResponse, Response, json_response
from essaim.api.router import Router
from essaim.engine.containers import ContainerService
from essaim.engine.system import go_arch, host_info, kernel_features, tool_version
from essaim.image.service import ImageService
from essaim.model.container import PAUSED, RUNNING
from essaim.model.log_config import DEFAULT_DRIVER, DRIVERS
from essaim.runtime.init_binary import find_init_binary, init_version
from essaim.store.events import EventBus

PING_HEADERS = [
    ("Builder-Version", "1"),
    ("Swarm", "inactive"),
    ("Cache-Control", "no-cache, no-store, must-revalidate"),
    ("Pragma", "no-cache"),
]


def _version_text(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


@dataclass
class DaemonFacts:
    daemon_id: str
    data_root: Path
    exec_root: Path
    default_runtime: str
    runtimes: dict[str, str]
    debug: bool
    backing_filesystem: str
    registry_config: dict[str, Any]


class SystemAPI:
    def __init__(
        self,
        facts: DaemonFacts,
        containers: ContainerService,
        images: ImageService,
        events: EventBus,
    ) -> None:
        self.events = events
        self.facts = facts
        self.containers = containers
        self.images = images

    def register(self, router: Router) -> None:
        router.get("/_ping", self.ping)
        router.get("/version", self.version)
        router.get("/info", self.info)

    async def ping(self, req: Request) -> AnyResponse:
        body = b"" if req.method == "HEAD" else b"OK"
        return Response(200, body, "text/plain; charset=utf-8", list(PING_HEADERS))

    async def version(self, req: Request) -> AnyResponse:
        # The engine's own figures appear twice: as the Engine component and at the top.
        engine = {
            "ApiVersion": _version_text(API_VERSION),
            "MinAPIVersion": _version_text(MIN_API_VERSION),
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": go_arch(),
            "KernelVersion": host_info().kernel_version,
            "BuildTime": "",
        }
        runtime_line = tool_version(self.facts.default_runtime)
        return json_response(
            {
                "Platform": {"Name": "essaim"},
                "Components": [
                    {"Name": "Engine", "Version": __version__,
                     "Details": {**engine, "Experimental": "false"}},
                    {"Name": self.facts.default_runtime, "Version": runtime_line,
                     "Details": {"GitCommit": ""}},
                    {"Name": "conmon", "Version": tool_version("conmon"),
                     "Details": {"GitCommit": ""}},
                ],
                "Version": __version__,
                **engine,
                "Experimental": False,
            }
        )  # fmt: skip

    async def info(self, req: Request) -> AnyResponse:
        host = host_info()
        containers = self.containers.list()
        running = sum(1 for c in containers if c.state.status == RUNNING)
        paused = sum(1 for c in containers if c.state.status == PAUSED)
        images = await self.images.list()
        kernel = kernel_features()
        return json_response(
            {
                "ID": self.facts.daemon_id,
                "Containers": len(containers),
                "ContainersRunning": running,
                "ContainersPaused": paused,
                "ContainersStopped": len(containers) - running - paused,
                "Images": len(images),
                "Driver": "overlay2",
                "DriverStatus": [["Backing Filesystem", self.facts.backing_filesystem]],
                "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "macvlan", "null"],
                            "Authorization": None, "Log": list(DRIVERS)},
                "MemoryLimit": kernel.memory_limit,
                "SwapLimit": kernel.swap_limit,
                "CpuCfsPeriod": kernel.cpu_cfs,
                "CpuCfsQuota": kernel.cpu_cfs,
                "CPUShares": kernel.cpu_shares,
                "CPUSet": kernel.cpuset,
                "PidsLimit": kernel.pids_limit,
                "IPv4Forwarding": kernel.ipv4_forwarding,
                "Debug": self.facts.debug,
                "NFd": _count_fds(),
                "NGoroutines": len(asyncio.all_tasks()),
                "SystemTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "LoggingDriver": DEFAULT_DRIVER,
                "CgroupDriver": "cgroupfs",
                "CgroupVersion": host.cgroup_version,
                "NEventsListener": self.events.listeners(),
                "KernelVersion": host.kernel_version,
                "OperatingSystem": host.operating_system,
                "OSVersion": host.os_version,
                "OSType": "linux",
                "Architecture": host.architecture,
                "IndexServerAddress": "",
                "RegistryConfig": self.facts.registry_config,
                "NCPU": host.ncpu,
                "MemTotal": host.mem_total,
                "DockerRootDir": str(self.facts.data_root),
                "Name": host.hostname,
                "Labels": [],
                "ExperimentalBuild": False,
                "ServerVersion": __version__,
                "Runtimes": {name: {"path": path} for name, path in self.facts.runtimes.items()},
                "DefaultRuntime": self.facts.default_runtime,
                "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                          "ControlAvailable": False, "Error": "", "RemoteManagers": None},
                "LiveRestoreEnabled": True,
                "Isolation": "",
                "InitBinary": Path(find_init_binary() or "").name,
                "ContainerdCommit": {"ID": ""},
                "RuncCommit": {"ID": tool_version(self.facts.default_runtime)},
                "InitCommit": {"ID": init_version()},
                "SecurityOptions": ["name=seccomp,profile=builtin"],
                "Warnings": [],
            }
        )  # fmt: skip


def _count_fds() -> int:
    try:
        return len(list(Path("/proc/self/fd").iterdir()))
    except OSError:
        return 0
