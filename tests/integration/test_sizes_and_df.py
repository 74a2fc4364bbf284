"""What containers take on disk (`ps --size`, `inspect --size`, `system df`) and the
`ps` filters on creation order (`before`, `since`)."""

from __future__ import annotations

import json
import time

from tests.integration.daemon import EssaimDaemon


def test_ps_and_inspect_size_count_what_the_container_wrote(daemon: EssaimDaemon) -> None:
    name = f"writer-{time.monotonic_ns()}"
    run = daemon.docker(
        "run", "--name", name, "busybox", "sh", "-c", "head -c 300000 /dev/zero > /big"
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    inspect = json.loads(daemon.docker("inspect", "--size", name).stdout)[0]
    assert 300_000 <= inspect["SizeRw"] < 400_000
    image_size = json.loads(daemon.docker("image", "inspect", "busybox").stdout)[0]["Size"]
    assert inspect["SizeRootFs"] == inspect["SizeRw"] + image_size
    listed = daemon.client().api.containers(all=True, size=True, filters={"name": name})
    assert listed[0]["SizeRw"] == inspect["SizeRw"]
    shown = daemon.docker("ps", "-a", "--size", "-f", f"name={name}", "--format", "{{.Size}}")
    assert shown.stdout.startswith("300kB") or shown.stdout.startswith("301kB"), shown.stdout
    daemon.docker("rm", name)


def test_before_and_since_follow_creation_order(daemon: EssaimDaemon) -> None:
    tag = time.monotonic_ns()
    names = [f"order-{tag}-{i}" for i in range(3)]
    for name in names:
        assert daemon.docker("create", "--name", name, "busybox", "true").returncode == 0

    def listed(flt: str) -> list[str]:
        out = daemon.docker("ps", "-a", "--filter", flt, "--format", "{{.Names}}").stdout
        return [n for n in out.split() if n.startswith(f"order-{tag}")]

    assert listed(f"before={names[1]}") == [names[0]]
    assert listed(f"since={names[1]}") == [names[2]]
    assert listed(f"since={names[0]}") == [names[2], names[1]]
    missing = daemon.docker("ps", "-a", "--filter", "before=no-such-container")
    assert missing.returncode != 0 and "No such container: no-such-container" in missing.stderr
    daemon.docker("rm", *names)


def test_system_df_reports_images_and_containers(daemon: EssaimDaemon) -> None:
    name = f"df-{time.monotonic_ns()}"
    assert daemon.docker("run", "--name", name, "busybox", "sh", "-c",
                         "head -c 50000 /dev/zero > /f").returncode == 0  # fmt: skip
    usage = daemon.client().api.df()
    image_size = json.loads(daemon.docker("image", "inspect", "busybox").stdout)[0]["Size"]
    assert usage["LayersSize"] >= image_size
    busybox = [i for i in usage["Images"] if "busybox:latest" in i["RepoTags"]]
    assert busybox and busybox[0]["Containers"] >= 1
    mine = [c for c in usage["Containers"] if c["Names"] == [f"/{name}"]]
    assert mine and 50_000 <= mine[0]["SizeRw"] < 100_000
    volume = f"dfvol-{time.monotonic_ns()}"
    assert daemon.docker("run", "--rm", "-v", f"{volume}:/v", "busybox", "sh", "-c",
                         "head -c 20000 /dev/zero > /v/f").returncode == 0  # fmt: skip
    volumes = [v for v in daemon.client().api.df()["Volumes"] if v["Name"] == volume]
    assert volumes and volumes[0]["UsageData"] == {"Size": 20000, "RefCount": 0}
    daemon.docker("volume", "rm", volume)
    table = daemon.docker("system", "df", "--format", "{{.Type}} {{.TotalCount}}")
    assert table.returncode == 0, table.stderr
    assert "Images" in table.stdout and "Containers" in table.stdout
    daemon.docker("rm", name)
