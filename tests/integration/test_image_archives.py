"""docker save, docker load and docker image prune through the real docker CLI, the SDK
and skopeo: round trips keep ids and names, other tools' archives load, hostile
archives leave nothing behind, and prune keeps what containers use.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.daemon import EssaimDaemon
from tests.integration.test_images import (
    DataRoot,
    all_ids,
    docker_bytes,
    hostile_archives,
    image_id,
    import_tar,
    ok,
    unique,
    unique_layer,
    write_tar,
)
from tests.tarballs import members


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def save(daemon: EssaimDaemon, *names: str) -> bytes:
    done = subprocess.run(
        ["docker", "save", *names], env=daemon.env(), capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def load(daemon: EssaimDaemon, archive: bytes) -> tuple[int, str, str]:
    result = docker_bytes(daemon, "load", data=archive)
    return result.returncode, result.stdout, result.stderr


def tar_of(files: dict[str, bytes | str]) -> bytes:
    """A tar of files (bytes) and symlinks (str: the target), in this order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, value in files.items():
            info = tarfile.TarInfo(name)
            if isinstance(value, str):
                info.type, info.linkname = tarfile.SYMTYPE, value
                tar.addfile(info)
            else:
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
    return buf.getvalue()


def archive_of_layer(layer: bytes, tag: str, *, stored: bytes | None = None) -> bytes:
    """A docker-archive of one image whose one layer is `layer`, the file holding it
    named by its digest and holding `stored` (`layer` unless told)."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [sha(layer)]},
        }
    ).encode()
    path = f"blobs/sha256/{sha(layer)[7:]}"
    manifest = [{"Config": "config.json", "RepoTags": [tag], "Layers": [path]}]
    return tar_of(
        {
            "config.json": config,
            path: layer if stored is None else stored,
            "manifest.json": json.dumps(manifest).encode(),
        }
    )


def json_member(archive: dict[str, bytes | None], name: str) -> Any:
    return json.loads(archive[name] or b"null")


# -- save and load


def test_save_rmi_load_gives_back_the_same_ids_and_tags(daemon: EssaimDaemon) -> None:
    busybox = image_id(daemon, "busybox")
    ctr = unique("saved")
    ok(daemon.docker("run", "--name", ctr, "busybox", "sh", "-c", "echo kept > /kept"))
    committed = ok(daemon.docker("commit", ctr, "committed-save:v1")).strip()
    ok(daemon.docker("rm", ctr))
    ok(daemon.docker("tag", "busybox", "two-tags:a"))
    ok(daemon.docker("tag", "busybox", "localhost:5000/two-tags:b"))
    names = ["busybox", "committed-save:v1", "two-tags:a", "localhost:5000/two-tags:b"]
    archive = save(daemon, *names)
    ok(daemon.docker("rmi", *names))
    assert busybox not in all_ids(daemon) and committed not in all_ids(daemon)
    code, out, err = load(daemon, archive)
    assert code == 0, err
    assert sorted(out.splitlines()) == sorted(f"Loaded image: {n}" for n in
                                              ["busybox:latest", *names[1:]])  # fmt: skip
    for name in names:
        assert image_id(daemon, name) == (committed if name.startswith("committed") else busybox)
    run = ok(daemon.docker("run", "--rm", "committed-save:v1", "cat", "/kept"))
    assert run == "kept\n"
    ok(daemon.docker("rmi", "committed-save:v1", "two-tags:a", "localhost:5000/two-tags:b"))


def test_save_to_stdout_is_the_oci_layout_with_the_legacy_manifest(daemon: EssaimDaemon) -> None:
    busybox = image_id(daemon, "busybox")
    archive = members(save(daemon, "busybox"))
    assert {"blobs", "blobs/sha256", "index.json", "manifest.json", "oci-layout"} <= set(archive)
    assert archive["oci-layout"] == b'{"imageLayoutVersion": "1.0.0"}'
    manifest = json_member(archive, "manifest.json")
    assert manifest == [
        {
            "Config": f"blobs/sha256/{busybox[7:]}",
            "RepoTags": ["busybox:latest"],
            "Layers": manifest[0]["Layers"],
        }
    ]
    assert sha(archive[manifest[0]["Config"]] or b"") == busybox
    index = json_member(archive, "index.json")
    assert index["manifests"][0]["annotations"] == {
        "io.containerd.image.name": "docker.io/library/busybox:latest",
        "org.opencontainers.image.ref.name": "latest",
    }
    by_id = members(save(daemon, busybox[7:19]))
    assert json_member(by_id, "manifest.json")[0]["RepoTags"] is None


def test_save_of_an_unknown_name_is_dockers_error(daemon: EssaimDaemon, tmp_path: Path) -> None:
    result = daemon.docker("save", "-o", str(tmp_path / "out.tar"), "busybox:nosuchtag")
    assert result.returncode == 1
    assert result.stderr == "Error response from daemon: reference does not exist\n"


def test_sdk_save_and_load(daemon: EssaimDaemon) -> None:
    client = daemon.client()
    busybox = client.images.get("busybox")
    data = b"".join(busybox.save(named=True))
    client.images.get("busybox").tag("sdk-saved", "x")
    loaded = client.images.load(data)
    assert [image.id for image in loaded] == [busybox.id]
    assert "busybox:latest" in loaded[0].tags
    client.images.remove("sdk-saved:x")


def _on_a_terminal(daemon: EssaimDaemon, *args: str) -> str:
    """What `docker ARGS` writes to a terminal (the CLI asks for progress only there)."""
    import os
    import pty

    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        ["docker", *args], env=daemon.env(), stdin=subprocess.DEVNULL,
        stdout=secondary, stderr=secondary,
    )  # fmt: skip
    os.close(secondary)
    out = b""
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:  # EIO: the CLI closed the terminal
            break
        if not data:
            break
        out += data
    os.close(primary)
    assert proc.wait(timeout=60) == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


def test_load_streams_loading_layer_progress_unless_quiet(
    daemon: EssaimDaemon, tmp_path: Path
) -> None:
    ctr, ref = unique("progress"), unique("load-progress") + ":v1"
    ok(daemon.docker("run", "--name", ctr, "busybox", "sh", "-c",
                     "head -c 3000000 /dev/urandom > /blob"))  # fmt: skip
    ok(daemon.docker("commit", ctr, ref))
    ok(daemon.docker("rm", ctr))
    base, new = json.loads(ok(daemon.docker("image", "inspect", ref)))[0]["RootFS"]["Layers"]
    archive = save(daemon, ref)
    files = members(archive)
    (entry,) = json_member(files, "manifest.json")
    sizes = [len(files[name] or b"") for name in entry["Layers"]]
    api = daemon.client().api
    ok(daemon.docker("rmi", ref))

    messages = list(api.load_image(archive, quiet=False))
    loading = [m for m in messages if m.get("status") == "Loading layer"]
    # busybox's layer is here already: like moby, only the layer unpacked is reported.
    assert {m["id"] for m in loading} == {new[7:19]}
    assert base[7:19] != new[7:19]
    for m in loading:
        assert 0 < m["progressDetail"]["current"] <= m["progressDetail"]["total"] == sizes[1]
        assert m["progress"].startswith("[")
    assert loading[-1]["progressDetail"]["current"] == sizes[1]
    assert messages[len(loading) :] == [{"stream": f"Loaded image: {ref}\n"}]

    for quiet in (None, True):  # moby's default is quiet
        ok(daemon.docker("rmi", ref))
        assert list(api.load_image(archive, quiet=quiet)) == [{"stream": f"Loaded image: {ref}\n"}]

    ok(daemon.docker("rmi", ref))
    (tmp_path / "image.tar").write_bytes(archive)
    shown = _on_a_terminal(daemon, "load", "-i", str(tmp_path / "image.tar"))
    assert f"{new[7:19]}: Loading layer" in shown
    assert f"Loaded image: {ref}" in shown
    code, out, err = load(daemon, archive)  # not a terminal: the lines alone
    assert (code, out) == (0, f"Loaded image: {ref}\n"), err
    ok(daemon.docker("rmi", ref))


def test_load_moves_a_name_from_another_image_with_dockers_notice(
    daemon: EssaimDaemon, tmp_path: Path
) -> None:
    ref = unique("renamed") + ":latest"
    old = import_tar(daemon, unique_layer(tmp_path), ref)
    busybox = image_id(daemon, "busybox")
    ok(daemon.docker("tag", "busybox", ref))
    archive = save(daemon, ref)
    ok(daemon.docker("tag", old, ref))
    code, out, err = load(daemon, archive)
    assert code == 0, err
    assert out == (
        f"The image {ref} already exists, renaming the old one with ID {old} to empty string\n"
        f"Loaded image: {ref}\n"
    )
    assert image_id(daemon, ref) == busybox
    ok(daemon.docker("rmi", ref, old))


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs skopeo")
def test_an_oci_layout_made_by_skopeo_loads(daemon: EssaimDaemon, tmp_path: Path) -> None:
    busybox = image_id(daemon, "busybox")
    (tmp_path / "busybox.tar").write_bytes(save(daemon, "busybox"))
    for target, expected in (
        ("named:localhost/skopeo-oci:v1", "Loaded image: localhost/skopeo-oci:v1\n"),
        ("bare", f"Loaded image ID: {busybox}\n"),
    ):
        layout = tmp_path / target.split(":")[0]
        dest = f"oci:{layout}" + (target[len("named") :] if target.startswith("named") else "")
        copy = subprocess.run(
            ["skopeo", "copy", f"docker-archive:{tmp_path / 'busybox.tar'}", dest],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert copy.returncode == 0, copy.stderr
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path in sorted(layout.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(layout)), recursive=False)
        code, out, err = load(daemon, buf.getvalue())
        assert code == 0, err
        assert out == expected
    assert image_id(daemon, "localhost/skopeo-oci:v1") == busybox
    ok(daemon.docker("rmi", "localhost/skopeo-oci:v1"))


def test_an_old_format_docker_archive_loads(daemon: EssaimDaemon) -> None:
    busybox = image_id(daemon, "busybox")
    saved = members(save(daemon, "busybox"))
    manifest = json_member(saved, "manifest.json")[0]
    config, layer = saved[manifest["Config"]] or b"", saved[manifest["Layers"][0]] or b""
    old = tar_of(
        {
            f"{busybox[7:]}.json": config,
            "0123abcd/layer.tar": layer,
            "0123abcd/json": b"{}",
            "0123abcd/VERSION": b"1.0",
            "4567ef/layer.tar": "../0123abcd/layer.tar",  # how duplicate layers were written
            "manifest.json": json.dumps(
                [
                    {
                        "Config": f"{busybox[7:]}.json",
                        "RepoTags": ["old-format:v1"],
                        "Layers": ["4567ef/layer.tar"],
                    }
                ]
            ).encode(),
            "repositories": json.dumps({"old-format": {"v1": "4567ef"}}).encode(),
        }
    )
    code, out, err = load(daemon, old)
    assert code == 0, err
    assert out == "Loaded image: old-format:v1\n"
    assert image_id(daemon, "old-format:v1") == busybox
    ok(daemon.docker("rmi", "old-format:v1"))


def test_a_compressed_archive_loads(daemon: EssaimDaemon) -> None:
    archive = save(daemon, "busybox")
    for packed in (gzip.compress(archive), lzma.compress(archive)):
        code, out, err = load(daemon, packed)
        assert (code, out) == (0, "Loaded image: busybox:latest\n"), err


# -- bad and hostile archives


def test_a_bad_archive_is_refused_and_leaves_nothing(daemon: EssaimDaemon) -> None:
    before_ids, before_disk = all_ids(daemon), DataRoot.of(daemon)
    layer = tar_of({"token": unique("token").encode()})
    tampered = archive_of_layer(layer, "tampered:1", stored=layer.replace(b"token", b"tokem"))
    cases = {
        b"garbage" * 1000: "Error response from daemon: archive/tar: invalid tar header",
        tar_of({"hello": b"x"}): "Error response from daemon: invalid archive: no manifest.json",
        tampered: "Error response from daemon: digest mismatch",
    }
    for archive, message in cases.items():
        code, _, err = load(daemon, archive)
        assert code == 1
        assert err.startswith(message), err
    assert all_ids(daemon) == before_ids
    assert DataRoot.of(daemon) == before_disk


@pytest.mark.parametrize("case", [h.name for h in hostile_archives("x")])
def test_hostile_layer_in_a_loaded_archive_never_writes_outside(
    daemon: EssaimDaemon, tmp_path: Path, case: str
) -> None:
    token = unique("essaim-escape-load")
    hostile = next(h for h in hostile_archives(token) if h.name == case)
    layer = write_tar(tmp_path / "layer.tar", hostile.members).read_bytes()
    ref = unique("hostile-load") + ":1"
    before_ids, before_disk = all_ids(daemon), DataRoot.of(daemon)
    code, _, err = load(daemon, archive_of_layer(layer, ref))
    assert not [p for p in hostile.outside if p.exists() or p.is_symlink()]
    if hostile.error is not None:
        assert code == 1
        assert err == f"Error response from daemon: {hostile.error}\n"
        assert all_ids(daemon) == before_ids
        assert DataRoot.of(daemon) == before_disk
        return
    assert code == 0, err
    data = json.loads(ok(daemon.docker("image", "inspect", ref)))[0]
    landed = Path(data["GraphDriver"]["Data"]["UpperDir"]) / hostile.inside
    assert landed.is_file() and not landed.is_symlink()
    assert landed.resolve().is_relative_to(daemon.data_root)
    ok(daemon.docker("rmi", ref))


def test_device_nodes_of_a_layer_are_inert_in_a_container(
    daemon: EssaimDaemon, tmp_path: Path
) -> None:
    saved = members(save(daemon, "busybox"))
    manifest = json_member(saved, "manifest.json")[0]
    base = saved[manifest["Layers"][0]] or b""
    device = tarfile.TarInfo("devnull-copy")
    device.type, device.devmajor, device.devminor, device.mode = tarfile.CHRTYPE, 1, 3, 0o666
    buf = io.BytesIO()  # busybox's layer plus the node
    with tarfile.open(fileobj=io.BytesIO(base)) as src, tarfile.open(fileobj=buf, mode="w") as out:
        for item in src:
            out.addfile(item, src.extractfile(item) if item.isreg() else None)
        out.addfile(device)
    ref = unique("device-node") + ":1"
    code, _, err = load(daemon, archive_of_layer(buf.getvalue(), ref))
    assert code == 0, err
    # The node exists, as Docker makes it as root, but the rootfs is mounted nodev: the
    # device cgroup would allow 1:3, so only that refusal stops the write.
    result = daemon.docker(
        "run", "--rm", ref, "sh", "-c", "ls -l /devnull-copy; echo x > /devnull-copy"
    )
    assert result.stdout.startswith("crw-rw-rw-"), result.stdout
    assert "Permission denied" in result.stderr
    assert result.returncode != 0
    ok(daemon.docker("rmi", ref))


# -- prune


def test_prune_default_removes_dangling_images_only(daemon: EssaimDaemon, tmp_path: Path) -> None:
    tagged = import_tar(daemon, unique_layer(tmp_path), unique("prune-tagged") + ":1")
    dangling = ok(daemon.docker("import", str(unique_layer(tmp_path)))).strip()
    out = ok(daemon.docker("image", "prune", "-f"))
    assert f"deleted: {dangling}" in out
    assert out.splitlines()[-1].startswith("Total reclaimed space: ")
    assert dangling not in all_ids(daemon) and tagged in all_ids(daemon)
    ok(daemon.docker("rmi", tagged))


def test_prune_all_keeps_images_containers_use(daemon: EssaimDaemon, tmp_path: Path) -> None:
    used_ref = unique("prune-used") + ":1"
    ok(daemon.docker("tag", "busybox", used_ref))
    ctr = ok(daemon.docker("create", used_ref, "true")).strip()
    unused = import_tar(daemon, unique_layer(tmp_path), unique("prune-unused") + ":1")
    busybox = image_id(daemon, "busybox")
    client = daemon.client()
    report = client.images.prune(filters={"dangling": False})
    deleted = [item.get("Deleted") for item in report["ImagesDeleted"]]
    assert unused in deleted
    assert busybox not in deleted
    assert report["SpaceReclaimed"] > 0
    assert unused not in all_ids(daemon)
    # moby untags an image in use down to its last name, which the container keeps.
    names = json.loads(ok(daemon.docker("image", "inspect", busybox)))[0]
    assert len(names["RepoTags"]) == 1
    ok(daemon.docker("rm", ctr))
    restored = names["RepoTags"][0]
    for name in ("busybox:latest", used_ref):
        if name != restored:
            ok(daemon.docker("tag", restored, name))
    if restored not in ("busybox:latest", used_ref):
        ok(daemon.docker("rmi", restored))
    ok(daemon.docker("rmi", used_ref))


def test_prune_filters_label_and_until(daemon: EssaimDaemon, tmp_path: Path) -> None:
    labelled = ok(
        daemon.docker("import", "--change", "LABEL prune=me", str(unique_layer(tmp_path)))
    ).strip()
    other = ok(
        daemon.docker("import", "--change", "LABEL keep=1", str(unique_layer(tmp_path)))
    ).strip()
    out = ok(daemon.docker("image", "prune", "-f", "--filter", "label=prune=me"))
    assert f"deleted: {labelled}" in out and other not in out
    out = ok(daemon.docker("image", "prune", "-f", "--filter", "label!=keep"))
    assert other not in out
    out = ok(daemon.docker("image", "prune", "-f", "--filter", "until=2000-01-01T00:00:00Z"))
    assert other not in out
    later = str(int(time.time()) + 3600)
    out = ok(daemon.docker("image", "prune", "-f", "--filter", f"until={later}"))
    assert f"deleted: {other}" in out
    bad = daemon.docker("image", "prune", "-f", "--filter", "reference=x")
    assert bad.returncode == 1
    assert bad.stderr == "Error response from daemon: invalid filter 'reference'\n"


def test_prune_publishes_its_event(daemon: EssaimDaemon, tmp_path: Path) -> None:
    dangling = ok(daemon.docker("import", str(unique_layer(tmp_path)))).strip()
    client = daemon.client()
    report = client.images.prune()
    assert {"Deleted": dangling} in report["ImagesDeleted"]
    # Not `--until 0s`: the CLI turns a duration into whole seconds, which would leave
    # out an event of the current second.
    now = time.time_ns()
    until = f"{now // 10**9}.{now % 10**9:09d}"
    events = ok(
        daemon.docker("events", "--since", "60s", "--until", until, "--filter", "type=image",
                      "--filter", "event=prune", "--format", "{{json .Actor.Attributes}}")
    )  # fmt: skip
    assert '"reclaimed"' in events


def test_unnamed_images_list_with_placeholders_before_api_1_43(
    daemon: EssaimDaemon, tmp_path: Path
) -> None:
    dangling = ok(daemon.docker("import", str(unique_layer(tmp_path)))).strip()
    old = docker.APIClient(base_url=daemon.host, version="1.41")
    new = docker.APIClient(base_url=daemon.host, version="1.45")
    summary = next(i for i in old.images(all=True) if i["Id"] == dangling)
    assert (summary["RepoTags"], summary["RepoDigests"]) == (["<none>:<none>"], ["<none>@<none>"])
    summary = next(i for i in new.images(all=True) if i["Id"] == dangling)
    assert (summary["RepoTags"], summary["RepoDigests"]) == ([], [])
    ok(daemon.docker("rmi", dangling))
