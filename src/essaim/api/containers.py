"""Container endpoints: wire JSON <-> the container service. Create, inspect, list,
start/stop/kill/restart, wait, attach (hijack), resize, remove (logs: container_logs).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from essaim.api.container_list import ContainerSelection, image_family_of
from essaim.api.container_network_wire import (
    network_settings_wire,
    networks_wire,
    parse_networking_config,
    parse_port_bindings,
    port_bindings_wire,
    summary_ports,
)  # fmt: skip
from essaim.api.filters import Filters
from essaim.api.health_wire import (
    config_healthcheck,
    inspect_health,
    parse_healthcheck,
)
from essaim.api.identity_wire import identity_wire, parse_identity
from essaim.api.log_config_wire import log_config_wire, log_path_wire, parse_log_config
from essaim.api.mount_wire import (
    mount_point_wire,
    mount_spec_wire,
    parse_mounts,
    parse_tmpfs,
)  # fmt: skip
from essaim.api.request import Request
from essaim.api.responses import (
    AnyResponse,
    HijackResponse,
    StreamResponse,
    empty,
    json_response,
)  # fmt: skip
from essaim.api.router import Router
from essaim.api.wire_fields import integer, string_map, strings
from essaim.engine.attach import AttachOptions, parse_detach_keys
from essaim.engine.containers import ContainerService
from essaim.engine.hostfiles import host_file_mounts
from essaim.engine.status import status_text
from essaim.errors import InvalidParameter
from essaim.model.container import (
    DEAD,
    PAUSED,
    RESTARTING,
    RUNNING,
    Container,
    ContainerConfig,
    HostConfig,
    RestartPolicy,
)  # fmt: skip
from essaim.model.rfc3339 import unix_seconds

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW_STREAM = "application/vnd.docker.raw-stream"


def parse_create(body: Any) -> tuple[ContainerConfig, HostConfig]:
    if not isinstance(body, dict):
        raise InvalidParameter("config cannot be empty in order to create a container")
    image = body.get("Image")
    if not isinstance(image, str) or not image:
        raise InvalidParameter("config cannot be empty in order to create a container")
    host = body.get("HostConfig") or {}
    if not isinstance(host, dict):
        raise InvalidParameter("json: cannot unmarshal HostConfig: expected an object")
    restart = host.get("RestartPolicy") or {}
    console = host.get("ConsoleSize") or [0, 0]
    stop_timeout = body.get("StopTimeout")
    config = ContainerConfig(
        image=image,
        cmd=strings(body.get("Cmd"), "Cmd"),
        entrypoint=strings(body.get("Entrypoint"), "Entrypoint"),
        env=strings(body.get("Env"), "Env"),
        working_dir=str(body.get("WorkingDir") or ""),
        user=str(body.get("User") or ""),
        hostname=str(body.get("Hostname") or ""),
        domainname=str(body.get("Domainname") or ""),
        tty=bool(body.get("Tty")),
        open_stdin=bool(body.get("OpenStdin")),
        stdin_once=bool(body.get("StdinOnce")),
        attach_stdin=bool(body.get("AttachStdin")),
        attach_stdout=bool(body.get("AttachStdout")),
        attach_stderr=bool(body.get("AttachStderr")),
        labels=string_map(body.get("Labels"), "Labels"),
        stop_signal=str(body.get("StopSignal") or ""),
        stop_timeout=None if stop_timeout is None else integer(stop_timeout, "StopTimeout"),
        exposed_ports=sorted((body.get("ExposedPorts") or {}).keys()),
        volumes=sorted((body.get("Volumes") or {}).keys()),
        healthcheck=parse_healthcheck(body.get("Healthcheck")),
    )
    if config.working_dir and not config.working_dir.startswith("/"):
        raise InvalidParameter(
            f"the working directory '{config.working_dir}' is invalid, it needs to be an "
            "absolute path"
        )
    ulimits = [
        (str(u.get("Name")), integer(u.get("Soft"), "Soft"), integer(u.get("Hard"), "Hard"))
        for u in host.get("Ulimits") or []
    ]
    host_config = HostConfig(
        auto_remove=bool(host.get("AutoRemove")),
        restart_policy=RestartPolicy(
            name=str(restart.get("Name") or "no"),
            maximum_retry_count=integer(restart.get("MaximumRetryCount"), "MaximumRetryCount"),
        ),
        console_size=(int(console[0] or 0), int(console[1] or 0)),
        runtime=str(host.get("Runtime") or ""),
        network_mode=str(host.get("NetworkMode") or "default"),
        privileged=bool(host.get("Privileged")),
        readonly_rootfs=bool(host.get("ReadonlyRootfs")),
        cap_add=strings(host.get("CapAdd"), "CapAdd"),
        cap_drop=strings(host.get("CapDrop"), "CapDrop"),
        security_opt=strings(host.get("SecurityOpt"), "SecurityOpt"),
        memory=integer(host.get("Memory"), "Memory"),
        memory_swap=integer(host.get("MemorySwap"), "MemorySwap"),
        memory_reservation=integer(host.get("MemoryReservation"), "MemoryReservation"),
        oom_kill_disable=bool(host.get("OomKillDisable")),
        nano_cpus=integer(host.get("NanoCpus"), "NanoCpus"),
        cpu_shares=integer(host.get("CpuShares"), "CpuShares"),
        cpu_quota=integer(host.get("CpuQuota"), "CpuQuota"),
        cpu_period=integer(host.get("CpuPeriod"), "CpuPeriod"),
        pids_limit=integer(host.get("PidsLimit"), "PidsLimit"),
        cpuset_cpus=str(host.get("CpusetCpus") or ""),
        cpuset_mems=str(host.get("CpusetMems") or ""),
        shm_size=integer(host.get("ShmSize"), "ShmSize"),
        ulimits=ulimits,
        binds=strings(host.get("Binds"), "Binds"),
        mounts=parse_mounts(host.get("Mounts")),
        tmpfs=parse_tmpfs(host.get("Tmpfs")),
        volumes_from=strings(host.get("VolumesFrom"), "VolumesFrom"),
        volume_driver=str(host.get("VolumeDriver") or ""),
        init=bool(host.get("Init")),
        oom_score_adj=integer(host.get("OomScoreAdj"), "OomScoreAdj"),
        port_bindings=parse_port_bindings(host.get("PortBindings")),
        publish_all_ports=bool(host.get("PublishAllPorts")),
        **parse_identity(host),
    )
    host_config.log_type, host_config.log_options = parse_log_config(host.get("LogConfig"))
    return config, host_config


def _ports_map(container: Container) -> dict[str, None]:
    return {port: None for port in container.config.exposed_ports}


# Inspect's names for the files of `host_file_mounts`, in its order.
HOST_FILE_KEYS = ("ResolvConfPath", "HostnamePath", "HostsPath")


def _host_file_paths(container_dir: Path) -> dict[str, str]:
    """The files bind-mounted at /etc, once written (at create, rewritten at each start)."""
    mounts = host_file_mounts(container_dir)
    return {
        key: source if os.path.exists(source) else ""
        for key, (source, _) in zip(HOST_FILE_KEYS, mounts, strict=True)
    }


def inspect_wire(
    container: Container, network_id: Callable[[str], str], exec_ids: list[str] | None = None
) -> dict[str, Any]:
    config, host, state = container.config, container.host_config, container.state
    return {
        "Id": container.id,
        "Created": container.created,
        "Path": container.path,
        "Args": container.args,
        "State": {
            "Status": state.status,
            # dockerd counts a restarting container as running (its SetRestarting).
            "Running": state.status in (RUNNING, PAUSED, RESTARTING),
            "Paused": state.status == PAUSED,
            "Restarting": state.status == RESTARTING,
            "OOMKilled": state.oom_killed,
            "Dead": state.status == DEAD,
            "Pid": state.pid,
            "ExitCode": state.exit_code,
            "Error": state.error,
            "StartedAt": state.started_at,
            "FinishedAt": state.finished_at,
            **inspect_health(container),
        },
        "Image": container.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": "",
        "Name": "/" + container.name,
        "RestartCount": state.restart_count,
        "Driver": container.driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": exec_ids or None,
        "HostConfig": {
            "Binds": host.binds or None,
            "ContainerIDFile": "",
            "LogConfig": log_config_wire(host),
            "NetworkMode": host.network_mode,
            "PortBindings": port_bindings_wire(host.port_bindings),
            "RestartPolicy": {
                "Name": host.restart_policy.name,
                "MaximumRetryCount": host.restart_policy.maximum_retry_count,
            },
            "AutoRemove": host.auto_remove,
            "PublishAllPorts": host.publish_all_ports,
            "VolumeDriver": host.volume_driver,
            "VolumesFrom": host.volumes_from or None,
            **({"Mounts": [mount_spec_wire(m) for m in host.mounts]} if host.mounts else {}),
            **({"Tmpfs": host.tmpfs} if host.tmpfs else {}),
            "ConsoleSize": list(host.console_size),
            "CapAdd": host.cap_add or None,
            "CapDrop": host.cap_drop or None,
            "Privileged": host.privileged,
            "ReadonlyRootfs": host.readonly_rootfs,
            "SecurityOpt": host.security_opt or None,
            "Runtime": container.runtime,
            "Memory": host.memory,
            "MemorySwap": host.memory_swap,
            "MemoryReservation": host.memory_reservation,
            "OomKillDisable": host.oom_kill_disable,
            "NanoCpus": host.nano_cpus,
            "CpuShares": host.cpu_shares,
            "CpuQuota": host.cpu_quota,
            "CpuPeriod": host.cpu_period,
            "PidsLimit": host.pids_limit or None,
            "CpusetCpus": host.cpuset_cpus,
            "CpusetMems": host.cpuset_mems,
            "ShmSize": host.shm_size,
            "Ulimits": [{"Name": n, "Soft": s, "Hard": h} for n, s, h in host.ulimits] or None,
            "OomScoreAdj": host.oom_score_adj,
            "Init": host.init,
            **identity_wire(host),
        },
        "GraphDriver": {"Name": container.driver, "Data": None},
        "Mounts": [mount_point_wire(p) for p in container.mount_points],
        "Config": {
            "Hostname": config.hostname,
            "Domainname": config.domainname,
            "User": config.user,
            "AttachStdin": config.attach_stdin,
            "AttachStdout": config.attach_stdout,
            "AttachStderr": config.attach_stderr,
            "ExposedPorts": _ports_map(container) or None,
            "Tty": config.tty,
            "OpenStdin": config.open_stdin,
            "StdinOnce": config.stdin_once,
            "Env": config.env,
            "Cmd": config.cmd or None,
            "Image": config.image,
            "Volumes": {v: {} for v in config.volumes} or None,
            "WorkingDir": config.working_dir,
            "Entrypoint": config.entrypoint or None,
            "OnBuild": None,
            "Labels": config.labels,
            "StopSignal": config.stop_signal or None,
            "StopTimeout": config.stop_timeout,
            **config_healthcheck(container),
        },
        "NetworkSettings": network_settings_wire(container, network_id),
    }


def summary_wire(
    container: Container, now: float, image: str, network_id: Callable[[str], str]
) -> dict[str, Any]:
    """One container of `docker ps`; `image` as the engine's `image_shown` says (the
    name typed at create, or the image id once that name has gone elsewhere)."""
    # As dockerd: an argument with a space in it is shown in single quotes.
    args = [f"'{a}'" if " " in a else a for a in container.args]
    return {
        "Id": container.id,
        "Names": ["/" + container.name],
        "Image": image,
        "ImageID": container.image_id,
        "Command": " ".join([container.path, *args]),
        "Created": int(unix_seconds(container.created)),
        "Ports": summary_ports(container),
        "Labels": container.config.labels,
        "State": container.state.status,
        "Status": status_text(container, now),
        "HostConfig": {"NetworkMode": container.host_config.network_mode},
        "NetworkSettings": {"Networks": networks_wire(container, network_id)},
        "Mounts": [mount_point_wire(p) for p in container.mount_points],
    }


class ContainersAPI:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers

    def register(self, router: Router) -> None:
        r = router
        r.post("/containers/create", self.create)
        r.get("/containers/json", self.list)
        r.get("/containers/{id}/json", self.inspect)
        r.post("/containers/{id}/start", self.start)
        r.post("/containers/{id}/stop", self.stop)
        r.post("/containers/{id}/restart", self.restart)
        r.post("/containers/{id}/kill", self.kill)
        r.post("/containers/{id}/wait", self.wait)
        r.post("/containers/{id}/attach", self.attach)
        r.post("/containers/{id}/resize", self.resize)
        r.delete("/containers/{id}", self.remove)

    async def create(self, req: Request) -> AnyResponse:
        body = await req.json(allow_empty=False)
        config, host_config = parse_create(body)
        endpoints = parse_networking_config(body)
        name = req.query.get("name") or None
        container = await self.containers.create(name, config, host_config, endpoints)
        return json_response({"Id": container.id, "Warnings": []}, 201)

    async def inspect(self, req: Request) -> AnyResponse:
        container = self.containers.get(req.params["id"])
        wire = inspect_wire(
            container, self.containers.network_id, self.containers.execs.ids_of(container.id)
        )
        files = self.containers.files(container.id)
        wire["LogPath"] = log_path_wire(container, files.log)
        wire.update(_host_file_paths(files.bundle))
        if req.query.get_bool("size"):
            wire["SizeRw"], wire["SizeRootFs"] = await self.containers.sizes(container)
        return json_response(wire)

    async def list(self, req: Request) -> AnyResponse:
        images = self.containers.images

        async def image_id(ref: str) -> str:
            return (await images.get(ref)).id

        newest_first = self.containers.list()
        selection = await ContainerSelection.parse(
            Filters.parse(req.query.get("filters")),
            show_all=req.query.get_bool("all"),
            limit=req.query.get_int("limit", -1) or -1,
            containers=newest_first,
            image_family=image_family_of(image_id, images.children),
        )
        with_size = req.query.get_bool("size")
        now = time.time()
        out = []
        for c in selection.select(newest_first):
            summary = summary_wire(
                c, now, self.containers.image_shown(c), self.containers.network_id
            )
            if with_size:
                summary["SizeRw"], summary["SizeRootFs"] = await self.containers.sizes(c)
            out.append(summary)
        return json_response(out)

    async def start(self, req: Request) -> AnyResponse:
        await self.containers.start(req.params["id"])
        return empty(204)

    async def stop(self, req: Request) -> AnyResponse:
        await self.containers.stop(
            req.params["id"], req.query.get_int("t"), req.query.get("signal") or None
        )
        return empty(204)

    async def restart(self, req: Request) -> AnyResponse:
        await self.containers.restart(
            req.params["id"], req.query.get_int("t"), req.query.get("signal") or None
        )
        return empty(204)

    async def kill(self, req: Request) -> AnyResponse:
        await self.containers.kill(req.params["id"], req.query.get("signal") or None)
        return empty(204)

    async def wait(self, req: Request) -> AnyResponse:
        future = self.containers.wait(req.params["id"], req.query.get("condition") or "")

        async def result() -> AsyncIterator[bytes]:
            # Headers are already out (the CLI blocks on them before it starts the
            # container); the body follows when the condition is met.
            code, error = await future
            body = {"StatusCode": code, "Error": {"Message": error} if error else None}
            yield json.dumps(body).encode() + b"\n"

        return StreamResponse(result())

    async def attach(self, req: Request) -> AnyResponse:
        q = req.query
        container = self.containers.get(req.params["id"])
        options = AttachOptions(
            stdin=q.get_bool("stdin"),
            stdout=q.get_bool("stdout"),
            stderr=q.get_bool("stderr"),
            tty=container.config.tty,
            stdin_once=container.config.stdin_once,
            detach_keys=parse_detach_keys(q.get("detachKeys") or ""),
        )
        run = self.containers.prepare_attach(container.id, options)
        tty = container.config.tty
        content = RAW_STREAM if tty or not req.version_at_least(1, 42) else MULTIPLEXED
        return HijackResponse(run, content)

    async def resize(self, req: Request) -> AnyResponse:
        height = req.query.get_int("h", 0) or 0
        width = req.query.get_int("w", 0) or 0
        await self.containers.resize(req.params["id"], height, width)
        return empty(200)

    async def remove(self, req: Request) -> AnyResponse:
        await self.containers.remove(
            req.params["id"], force=req.query.get_bool("force"), volumes=req.query.get_bool("v")
        )
        return empty(204)
