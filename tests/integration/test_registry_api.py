"""`essaim registry serve` driven over HTTP through the distribution spec's conformance
flows: push and pull of blobs (monolithic, chunked, resumed, mounted), manifests by tag
and digest, deletes, listings, referrers, and the spec's error bodies.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.registries import EssaimRegistry, make_image, sha256

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EssaimRegistry]:
    server = EssaimRegistry(tmp_path_factory.mktemp("es-registry") / "root")
    with server:
        yield server


@pytest.fixture
def client(registry: EssaimRegistry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=30) as c:
        yield c


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"errors"}
    (error,) = body["errors"]
    assert isinstance(error["message"], str) and error["message"]
    return str(error["code"])


def push_blob(client: httpx.Client, name: str, data: bytes) -> str:
    digest = sha256(data)
    r = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    return digest


def push_image(client: httpx.Client, name: str, tag: str, seed: bytes) -> str:
    image = make_image([{"f": seed}])
    for data in image.blobs.values():
        push_blob(client, name, data)
    r = client.put(
        f"/v2/{name}/manifests/{tag}",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201, r.text
    return image.digest


def test_base_endpoint_names_the_api_version(client: httpx.Client) -> None:
    r = client.get("/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_monolithic_push_then_pull_and_head(client: httpx.Client) -> None:
    data = os.urandom(300_000)
    digest = sha256(data)
    r = client.post("/v2/mono/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201
    assert r.headers["Location"] == f"/v2/mono/blobs/{digest}"
    assert r.headers["Docker-Content-Digest"] == digest
    head = client.head(f"/v2/mono/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == digest
    got = client.get(f"/v2/mono/blobs/{digest}")
    assert got.content == data


def test_range_get_of_a_blob(client: httpx.Client) -> None:
    data = bytes(range(256)) * 10
    digest = push_blob(client, "ranged", data)
    r = client.get(f"/v2/ranged/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    bad = client.get(f"/v2/ranged/blobs/{digest}", headers={"Range": "bytes=99999-"})
    assert bad.status_code == 416


def test_chunked_upload_checks_ranges_and_verifies_the_digest(client: httpx.Client) -> None:
    data = os.urandom(200_000)
    parts = [data[:70_000], data[70_000:150_000], data[150_000:]]
    start = client.post("/v2/chunked/blobs/uploads/")
    assert start.status_code == 202
    location = start.headers["Location"]
    assert location.startswith("/v2/chunked/blobs/uploads/")
    assert start.headers["Docker-Upload-UUID"] in location
    r = client.patch(
        location,
        content=parts[0],
        headers={
            "Content-Range": f"0-{len(parts[0]) - 1}",
            "Content-Type": "application/octet-stream",
        },
    )
    assert r.status_code == 202
    assert r.headers["Range"] == f"0-{len(parts[0]) - 1}"
    # A chunk that does not follow the last one is refused with where we are.
    out_of_order = client.patch(
        r.headers["Location"], content=parts[2], headers={"Content-Range": "150000-199999"}
    )
    assert out_of_order.status_code == 416
    assert out_of_order.headers["Range"] == f"0-{len(parts[0]) - 1}"
    r = client.patch(
        r.headers["Location"], content=parts[1], headers={"Content-Range": "70000-149999"}
    )
    assert r.status_code == 202
    status = client.get(r.headers["Location"])
    assert status.status_code == 204
    assert status.headers["Range"] == "0-149999"
    done = client.put(r.headers["Location"], params={"digest": sha256(data)}, content=parts[2])
    assert done.status_code == 201
    assert client.get(f"/v2/chunked/blobs/{sha256(data)}").content == data
    # The session is over.
    assert client.get(r.headers["Location"]).status_code == 404


def test_wrong_digest_is_refused_and_nothing_stored(client: httpx.Client) -> None:
    data, other = b"some bytes", b"other bytes"
    r = client.post("/v2/wrong/blobs/uploads/", params={"digest": sha256(other)}, content=data)
    assert r.status_code == 400
    assert error_code(r) == "DIGEST_INVALID"
    assert client.head(f"/v2/wrong/blobs/{sha256(other)}").status_code == 404
    assert client.head(f"/v2/wrong/blobs/{sha256(data)}").status_code == 404


def test_interrupted_patch_resumes_from_what_arrived(
    registry: EssaimRegistry, client: httpx.Client
) -> None:
    data = os.urandom(64_000)
    location = client.post("/v2/resume/blobs/uploads/").headers["Location"]
    half = 40_000
    with socket.create_connection(("127.0.0.1", registry.port)) as raw:
        raw.sendall(
            f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data[:half]
        )
    # The client went away mid-body; once the server has seen it go, what arrived is kept.
    deadline = time.monotonic() + 10
    while client.get(location).headers["Range"] != f"0-{half - 1}":
        assert time.monotonic() < deadline, client.get(location).headers["Range"]
        time.sleep(0.02)
    r = client.put(
        location,
        params={"digest": sha256(data)},
        content=data[half:],
        headers={"Content-Range": f"{half}-{len(data) - 1}"},
    )
    assert r.status_code == 201, r.text
    assert client.get(f"/v2/resume/blobs/{sha256(data)}").content == data


def test_uploads_survive_a_server_restart(tmp_path: Path) -> None:
    data = os.urandom(50_000)
    server = EssaimRegistry(tmp_path / "root")
    with server, httpx.Client(base_url=server.url) as c:
        location = c.post("/v2/restart/blobs/uploads/").headers["Location"]
        c.patch(location, content=data[:20_000])
    with server, httpx.Client(base_url=server.url) as c:
        assert c.get(location).headers["Range"] == "0-19999"
        r = c.put(location, params={"digest": sha256(data)}, content=data[20_000:])
        assert r.status_code == 201
        assert c.get(f"/v2/restart/blobs/{sha256(data)}").content == data


def _backdate_upload(server: EssaimRegistry, name: str, upload_id: str, hours: float) -> None:
    started = server.root / "repositories" / name / "_uploads" / upload_id / "startedat"
    assert started.is_file()
    started.write_text(f"{time.time() - hours * 3600:.0f}\n")


def test_abandoned_uploads_are_purged_at_start_up_and_every_interval(tmp_path: Path) -> None:
    server = EssaimRegistry(
        tmp_path / "root", ["--upload-purge-age", "1h", "--upload-purge-interval", "0.2s"]
    )
    with server, httpx.Client(base_url=server.url) as c:
        sessions = {}
        for name in ("purge/old", "purge/fresh"):
            r = c.post(f"/v2/{name}/blobs/uploads/")
            c.patch(r.headers["Location"], content=b"partial")
            sessions[name] = (r.headers["Location"], r.headers["Docker-Upload-UUID"])
    _backdate_upload(server, "purge/old", sessions["purge/old"][1], hours=2)
    with server, httpx.Client(base_url=server.url) as c:
        # Purged before the server listens: gone from its first answer on.
        old = c.get(sessions["purge/old"][0])
        assert old.status_code == 404
        assert error_code(old) == "BLOB_UPLOAD_UNKNOWN"
        fresh_location, fresh_id = sessions["purge/fresh"]
        assert c.get(fresh_location).headers["Range"] == "0-6"
        # Now it too is older than the age: the next periodic pass removes it.
        _backdate_upload(server, "purge/fresh", fresh_id, hours=2)
        deadline = time.monotonic() + 10
        while c.get(fresh_location).status_code != 404:
            assert time.monotonic() < deadline, "the periodic purge never came"
            time.sleep(0.05)
    assert not (server.root / "repositories" / "purge" / "fresh" / "_uploads" / fresh_id).exists()


def test_upload_purge_age_0_keeps_every_session(tmp_path: Path) -> None:
    server = EssaimRegistry(tmp_path / "root", ["--upload-purge-age", "0"])
    with server, httpx.Client(base_url=server.url) as c:
        r = c.post("/v2/kept/blobs/uploads/")
        location, upload_id = r.headers["Location"], r.headers["Docker-Upload-UUID"]
        c.patch(location, content=b"partial")
    _backdate_upload(server, "kept", upload_id, hours=24 * 365)
    with server, httpx.Client(base_url=server.url) as c:
        assert c.get(location).headers["Range"] == "0-6"


def test_cancelled_upload_is_gone(client: httpx.Client) -> None:
    location = client.post("/v2/cancel/blobs/uploads/").headers["Location"]
    assert client.delete(location).status_code == 204
    r = client.get(location)
    assert r.status_code == 404
    assert error_code(r) == "BLOB_UPLOAD_UNKNOWN"


def test_mount_from_another_repository(client: httpx.Client) -> None:
    digest = push_blob(client, "mount/source", b"shared layer")
    r = client.post(
        "/v2/mount/target/blobs/uploads/", params={"mount": digest, "from": "mount/source"}
    )
    assert r.status_code == 201
    assert r.headers["Docker-Content-Digest"] == digest
    assert client.get(f"/v2/mount/target/blobs/{digest}").content == b"shared layer"
    # Not in the source: an ordinary upload session instead.
    absent = sha256(b"never pushed")
    r = client.post(
        "/v2/mount/target/blobs/uploads/", params={"mount": absent, "from": "mount/source"}
    )
    assert r.status_code == 202
    assert "/blobs/uploads/" in r.headers["Location"]


def test_manifest_by_tag_and_digest_with_its_media_type(client: httpx.Client) -> None:
    image = make_image([{"f": b"manifest test"}])
    for data in image.blobs.values():
        push_blob(client, "man", data)
    r = client.put(
        "/v2/man/manifests/v1", content=image.manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 201
    assert r.headers["Docker-Content-Digest"] == image.digest
    assert r.headers["Location"] == f"/v2/man/manifests/{image.digest}"
    accept = {"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"}
    for ref in ("v1", image.digest):
        got = client.get(f"/v2/man/manifests/{ref}", headers=accept)
        assert got.status_code == 200
        assert got.content == image.manifest
        assert got.headers["Content-Type"] == OCI_MANIFEST
        assert got.headers["Docker-Content-Digest"] == image.digest
        head = client.head(f"/v2/man/manifests/{ref}", headers=accept)
        assert head.headers["Content-Length"] == str(len(image.manifest))
    # A client that takes only Docker's schema 2 is not handed an OCI manifest.
    refused = client.get("/v2/man/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert refused.status_code == 404
    assert error_code(refused) == "MANIFEST_UNKNOWN"


def test_manifest_put_by_digest_checks_the_digest(client: httpx.Client) -> None:
    image = make_image([{"f": b"by digest"}])
    for data in image.blobs.values():
        push_blob(client, "bydigest", data)
    wrong = sha256(b"not it")
    r = client.put(
        f"/v2/bydigest/manifests/{wrong}",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 400
    assert error_code(r) == "DIGEST_INVALID"
    r = client.put(
        f"/v2/bydigest/manifests/{image.digest}",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert r.status_code == 201


def test_manifest_with_a_missing_blob_is_refused(client: httpx.Client) -> None:
    image = make_image([{"f": b"missing layer"}])
    push_blob(client, "missing", image.config)  # the layer is never pushed
    r = client.put(
        "/v2/missing/manifests/v1", content=image.manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 400
    assert error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    assert client.get("/v2/missing/manifests/v1").status_code == 404


def _index(children: list[tuple[str, int, str]]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": d,
                    "size": s,
                    "platform": {"os": "linux", "architecture": arch},
                }
                for d, s, arch in children
            ],
        }
    ).encode()


def test_index_needs_its_children_and_old_clients_get_the_default_platform(
    client: httpx.Client,
) -> None:
    image = make_image([{"f": b"index child"}])
    missing = _index([(image.digest, len(image.manifest), "amd64")])
    r = client.put(
        "/v2/multi/manifests/latest", content=missing, headers={"Content-Type": OCI_INDEX}
    )
    assert r.status_code == 400
    assert error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    for data in image.blobs.values():
        push_blob(client, "multi", data)
    client.put(
        f"/v2/multi/manifests/{image.digest}",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    r = client.put(
        "/v2/multi/manifests/latest", content=missing, headers={"Content-Type": OCI_INDEX}
    )
    assert r.status_code == 201
    got = client.get(
        "/v2/multi/manifests/latest", headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"}
    )
    assert got.headers["Content-Type"] == OCI_INDEX
    old = client.get("/v2/multi/manifests/latest", headers={"Accept": OCI_MANIFEST})
    assert old.status_code == 200
    assert old.content == image.manifest
    assert old.headers["Docker-Content-Digest"] == image.digest


def test_tags_list_paginates_with_link(client: httpx.Client) -> None:
    digest = push_image(client, "paged", "a", b"paged")
    manifest = client.get(f"/v2/paged/manifests/{digest}").content
    for tag in ("e", "c", "b", "d"):
        client.put(
            f"/v2/paged/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
    assert client.get("/v2/paged/tags/list").json() == {
        "name": "paged",
        "tags": ["a", "b", "c", "d", "e"],
    }
    first = client.get("/v2/paged/tags/list", params={"n": 2})
    assert first.json()["tags"] == ["a", "b"]
    assert first.headers["Link"] == '</v2/paged/tags/list?last=b&n=2>; rel="next"'
    second = client.get("/v2/paged/tags/list?last=b&n=2")
    assert second.json()["tags"] == ["c", "d"]
    last = client.get("/v2/paged/tags/list?n=2&last=d")
    assert last.json()["tags"] == ["e"]
    assert "Link" not in last.headers
    bad_n = client.get("/v2/paged/tags/list", params={"n": "-1"})
    assert error_code(bad_n) == "PAGINATION_NUMBER_INVALID"
    unknown = client.get("/v2/never/pushed/tags/list")
    assert unknown.status_code == 404
    assert error_code(unknown) == "NAME_UNKNOWN"


def test_catalog_paginates(client: httpx.Client) -> None:
    for name in ("cat/a", "cat/b", "cat/c"):
        push_image(client, name, "1", name.encode())
    everything = client.get("/v2/_catalog").json()["repositories"]
    assert {"cat/a", "cat/b", "cat/c"} <= set(everything)
    assert everything == sorted(everything)
    page = client.get("/v2/_catalog", params={"n": 1, "last": "cat/a"})
    assert page.json() == {"repositories": ["cat/b"]}
    assert page.headers["Link"] == '</v2/_catalog?last=cat%2Fb&n=1>; rel="next"'


def test_referrers_list_and_filter(client: httpx.Client) -> None:
    subject = push_image(client, "refs", "v1", b"subject")
    subject_size = len(client.get(f"/v2/refs/manifests/{subject}").content)
    empty = b"{}"
    push_blob(client, "refs", empty)
    digests = {}
    for artifact_type in ("application/vnd.example.sbom", "application/vnd.example.sig"):
        artifact = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": sha256(empty),
                    "size": 2,
                },
                "layers": [],
                "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
                "annotations": {"kind": artifact_type},
            }
        ).encode()
        r = client.put(
            f"/v2/refs/manifests/{sha256(artifact)}",
            content=artifact,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.status_code == 201
        assert r.headers["OCI-Subject"] == subject
        digests[artifact_type] = (sha256(artifact), len(artifact))
    r = client.get(f"/v2/refs/referrers/{subject}")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == OCI_INDEX
    listed = {m["artifactType"]: m for m in r.json()["manifests"]}
    assert set(listed) == set(digests)
    sig = listed["application/vnd.example.sig"]
    assert (sig["digest"], sig["size"]) == digests["application/vnd.example.sig"]
    assert sig["annotations"] == {"kind": "application/vnd.example.sig"}
    filtered = client.get(
        f"/v2/refs/referrers/{subject}", params={"artifactType": "application/vnd.example.sbom"}
    )
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in filtered.json()["manifests"]] == [
        digests["application/vnd.example.sbom"][0]
    ]
    none = client.get(f"/v2/refs/referrers/{sha256(b'no subject')}")
    assert none.json()["manifests"] == []


def test_deletes(client: httpx.Client) -> None:
    digest = push_image(client, "del", "v1", b"to delete")
    manifest = client.get(f"/v2/del/manifests/{digest}").content
    client.put("/v2/del/manifests/v2", content=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert client.delete("/v2/del/manifests/v2").status_code == 202
    assert client.get("/v2/del/manifests/v2").status_code == 404
    assert client.get("/v2/del/manifests/v1").status_code == 200
    assert client.delete(f"/v2/del/manifests/{digest}").status_code == 202
    r = client.get("/v2/del/manifests/v1")
    assert r.status_code == 404
    assert error_code(r) == "MANIFEST_UNKNOWN"
    assert client.get("/v2/del/tags/list").json()["tags"] == []
    blob = push_blob(client, "del", b"a blob")
    assert client.delete(f"/v2/del/blobs/{blob}").status_code == 202
    gone = client.head(f"/v2/del/blobs/{blob}")
    assert gone.status_code == 404
    assert error_code(client.get(f"/v2/del/blobs/{blob}")) == "BLOB_UNKNOWN"


def test_error_codes_for_bad_input(client: httpx.Client) -> None:
    bad_name = client.get("/v2/Upper/Case/tags/list")
    assert bad_name.status_code == 400
    assert error_code(bad_name) == "NAME_INVALID"
    bad_digest = client.get("/v2/x/blobs/sha256:1234")
    assert bad_digest.status_code == 400
    assert error_code(bad_digest) == "DIGEST_INVALID"
    bad_manifest = client.put(
        "/v2/x/manifests/v1", content=b"not json", headers={"Content-Type": OCI_MANIFEST}
    )
    assert bad_manifest.status_code == 400
    assert error_code(bad_manifest) == "MANIFEST_INVALID"
    method = client.post("/v2/x/manifests/v1")
    assert method.status_code == 405
    assert error_code(method) == "UNSUPPORTED"
