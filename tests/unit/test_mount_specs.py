"""Parsing `-v`, `--mount`, `--tmpfs` and `--volumes-from` as dockerd's Linux parser does,
with its messages, and planning a container's mounts in dockerd's order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from essaim.errors import InvalidParameter, NotFound
from essaim.model.container import Container, ContainerConfig, HostConfig
from essaim.model.mount import BindOptions, MountPoint, MountSpec, TmpfsOptions
from essaim.volume.bind_spec import parse_bind, parse_volumes_from, valid_mode
from essaim.volume.mount_spec import mount_point, validate_mount
from essaim.volume.oci import oci_mounts
from essaim.volume.plan import plan_mounts
from essaim.volume.tmpfs import convert_options, merge_options, oci_options

pytestmark = pytest.mark.unit


def test_named_volume_bind() -> None:
    spec, point = parse_bind("data:/srv/data:ro")
    assert spec.type == "volume" and spec.source == "data" and spec.read_only
    assert (point.type, point.name, point.destination, point.rw) == (
        "volume",
        "data",
        "/srv/data",
        False,
    )
    assert point.copy_data and not point.anonymous and point.mode == "ro"


def test_host_path_bind_with_propagation() -> None:
    _, point = parse_bind("/host/dir/:/in:rw,rslave")
    assert point.type == "bind" and point.source == "/host/dir" and point.rw
    assert point.propagation == "rslave" and point.make_source
    _, default = parse_bind("/host:/in")
    assert default.propagation == "rprivate" and default.mode == ""


def test_destination_only_is_anonymous_and_nocopy_is_kept() -> None:
    _, anonymous = parse_bind("/only/here")
    assert anonymous.type == "volume" and anonymous.anonymous and anonymous.name == ""
    _, nocopy = parse_bind("v1:/x:nocopy")
    assert not nocopy.copy_data


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
        (":/x", "invalid volume specification: ':/x'"),
        ("/x:rw", "invalid volume specification: '/x:rw'"),
        ("/a:/b:rw,ro", "invalid mode: rw,ro"),
        ("/a:/b:fast", "invalid mode: fast"),
        ("v1:rel", "invalid volume specification: 'v1:rel': invalid mount config for type "
         "\"volume\": invalid mount path: 'rel' mount path must be absolute"),
        ("/a:/", "invalid specification: destination can't be '/'"),
    ],
)  # fmt: skip
def test_bad_binds(raw: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_bind(raw)
    assert message in caught.value.message


def test_mode_words_one_of_each_kind() -> None:
    assert valid_mode("ro,z,rshared,nocopy,cached")
    assert not valid_mode("z,Z")
    assert not valid_mode("shared,slave")


def test_volumes_from_modes() -> None:
    assert parse_volumes_from("c1") == ("c1", "rw")
    assert parse_volumes_from("c1:ro") == ("c1", "ro")
    for bad in ("c1:rshared", "c1:nocopy", "c1:bogus"):
        with pytest.raises(InvalidParameter, match="invalid mode"):
            parse_volumes_from(bad)
    with pytest.raises(InvalidParameter, match="cannot be an empty string"):
        parse_volumes_from("")


def test_mount_spec_checks_in_dockers_words() -> None:
    def refused(spec: MountSpec) -> str:
        with pytest.raises(InvalidParameter) as caught:
            validate_mount(spec, source_exists=lambda path: False)
        return caught.value.message

    assert refused(MountSpec(type="bind", source="/nope", target="/x")) == (
        'invalid mount config for type "bind": bind source path does not exist: /nope'
    )
    assert refused(MountSpec(type="bind", target="/x")) == (
        'invalid mount config for type "bind": field Source must not be empty'
    )
    assert refused(MountSpec(type="tmpfs", source="x", target="/x")) == (
        'invalid mount config for type "tmpfs": field Source must not be specified'
    )
    assert refused(MountSpec(type="volume", target="/x", bind_options=BindOptions())) == (
        'invalid mount config for type "volume": field BindOptions must not be specified'
    )
    assert refused(MountSpec(type="npipe", target="/x")) == (
        'invalid mount config for type "npipe": mount type unknown'
    )
    assert refused(MountSpec(type="volume", target="")) == (
        'invalid mount config for type "volume": field Target must not be empty'
    )
    bad_propagation = MountSpec(
        type="bind", source="/", target="/x", bind_options=BindOptions(propagation="sideways")
    )
    assert "invalid propagation mode: sideways" in refused(bad_propagation)


def test_tmpfs_mount_point_options() -> None:
    spec = MountSpec(
        type="tmpfs", target="/t/", read_only=True,
        tmpfs_options=TmpfsOptions(size_bytes=3 << 20, mode=0o1770),
    )  # fmt: skip
    point = mount_point(spec)
    assert point.destination == "/t" and point.tmpfs_data == "ro,mode=1770,size=3m"
    assert convert_options(TmpfsOptions(size_bytes=1000), False) == "size=1000"
    assert convert_options(TmpfsOptions(size_bytes=2 << 30), False) == "size=2g"


def test_tmpfs_options_merge_last_wins() -> None:
    assert oci_options("") == ["noexec", "nosuid", "nodev", "rprivate"]
    assert oci_options("exec,size=1m,size=2m,shared") == [
        "nosuid", "nodev", "exec", "size=2m", "shared",
    ]  # fmt: skip
    assert merge_options(["defaults", "ro", "rw"]) == ["rw"]
    with pytest.raises(InvalidParameter, match=r'invalid tmpfs option \["colour" "red"\]'):
        merge_options(["colour=red"])
    with pytest.raises(InvalidParameter, match=r'invalid tmpfs option \["bogus"\]'):
        merge_options(["bogus"])


def test_oci_mounts() -> None:
    points = [
        MountPoint(type="bind", destination="/b", source="/h", rw=False, propagation="rslave"),
        MountPoint(type="volume", destination="/v", source="/vol/_data", name="v"),
        MountPoint(type="tmpfs", destination="/t", tmpfs_data="size=1m"),
    ]
    mounts = oci_mounts(points, {"/run/": "exec"})
    assert [(m.destination, m.type, m.source, m.options) for m in mounts] == [
        ("/b", "bind", "/h", ["rbind", "ro", "rslave"]),
        ("/v", "bind", "/vol/_data", ["rbind", "rprivate"]),
        ("/t", "tmpfs", "tmpfs", ["noexec", "nosuid", "nodev", "rprivate", "size=1m"]),
        ("/run", "tmpfs", "tmpfs", ["nosuid", "nodev", "rprivate", "exec"]),
    ]


def _container(points: list[MountPoint]) -> Container:
    return Container(
        id="c" * 64, name="src", created="", image_id="", config=ContainerConfig(image="x"),
        host_config=HostConfig(), path="true", args=[], mount_points=points,
    )  # fmt: skip


def _no_container(ref: str) -> Container:
    raise NotFound(f"No such container: {ref}")


def test_plan_order_and_overrides() -> None:
    theirs = [
        MountPoint(type="volume", destination="/shared", name="s1", source="/s", rw=True),
        MountPoint(type="volume", destination="/over", name="s2", source="/o", rw=True),
    ]
    host = HostConfig(
        volumes_from=["src:ro"], binds=["named:/over"],
        mounts=[MountSpec(type="tmpfs", target="/tm")], tmpfs={"/run": ""},
    )  # fmt: skip
    planned = plan_mounts(["/anon", "/shared", "/run"], host, lambda ref: _container(theirs))
    by_dest = {p.point.destination: p for p in planned}
    assert set(by_dest) == {"/shared", "/over", "/tm", "/anon"}
    shared = by_dest["/shared"]
    assert shared.volume is None and not shared.point.rw and not shared.point.copy_data
    over = by_dest["/over"]
    assert over.volume is not None and over.volume.name == "named" and over.point.mode == "z"
    anon = by_dest["/anon"]
    assert anon.volume is not None and anon.volume.name == "" and anon.point.anonymous


def test_plan_refuses_before_making_anything() -> None:
    with pytest.raises(InvalidParameter, match="Duplicate mount point: /x"):
        plan_mounts([], HostConfig(binds=["a1:/x", "/h:/x"]), _no_container)
    with pytest.raises(InvalidParameter, match="Duplicate mount point: /run"):
        plan_mounts([], HostConfig(binds=["a1:/run"], tmpfs={"/run": ""}), _no_container)
    with pytest.raises(InvalidParameter, match="No such container: gone"):
        plan_mounts([], HostConfig(volumes_from=["gone"]), _no_container)
    with pytest.raises(NotFound, match='plugin "nfs" not found'):
        plan_mounts([], HostConfig(binds=["a1:/x"], volume_driver="nfs"), _no_container)
    with pytest.raises(InvalidParameter, match="includes invalid characters"):
        plan_mounts([], HostConfig(binds=["a/b:/x"]), _no_container)


@given(st.text(max_size=30))
def test_parse_bind_never_crashes(raw: str) -> None:
    try:
        spec, point = parse_bind(raw)
    except InvalidParameter:
        return
    assert point.destination.startswith("/")
    assert spec.type in ("bind", "volume")
