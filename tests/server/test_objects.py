"""The object routes (``/api/v1/objects``) spoken to directly over HTTP: what is stored,
what is refused, and uploads that survive a restart of the server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from fastapi import Request

from mloop.core.hashing import hash_bytes
from mloop.core.identity import Identity
from mloop.errors import ForbiddenError, TokenError
from mloop.objects.http import HttpObjectStore
from mloop.project import Project
from mloop.server.objects import ObjectLimits
from tests.objects.servers import ObjectServer

LIMITS = ObjectLimits(max_missing=100, max_put=1 << 20, max_part=1 << 20, max_record=1024)


@pytest.fixture
def server(tmp_path) -> Iterator[ObjectServer]:
    with ObjectServer(Project.init(tmp_path / "server"), limits=LIMITS) as s:
        yield s


@pytest.fixture
def http(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/api/v1/objects", timeout=10) as client:
        yield client


def test_put_stores_only_bytes_that_hash_to_the_digest(server, http):
    data = os.urandom(5000)
    digest = hash_bytes(data)
    wrong = http.put(f"/{hash_bytes(b'other')}", content=data)
    assert wrong.status_code == 422
    assert wrong.json()["error"]["code"] == "invalid_input"
    assert "nothing was stored" in wrong.json()["error"]["message"]
    assert list(server.project.objects.iter_digests()) == []
    assert not list((server.project.settings.project_dir / "uploads" / "tmp").iterdir())
    assert http.put(f"/{digest}", content=data).status_code == 201
    assert http.put(f"/{digest}", content=data).status_code == 200  # already there
    assert server.project.objects.get_bytes(digest) == data


def test_download_size_and_ranges(http):
    data = bytes(range(256)) * 40
    digest = hash_bytes(data)
    http.put(f"/{digest}", content=data)
    head = http.head(f"/{digest}")
    assert head.status_code == 200 and head.headers["x-mloop-size"] == str(len(data))
    assert http.get(f"/{digest}").content == data
    part = http.get(f"/{digest}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert http.get(f"/{digest}", headers={"Range": "bytes=10000-"}).content == data[10000:]
    assert http.get(f"/{digest}", headers={"Range": "bytes=-5"}).content == data[-5:]
    for bad in (f"bytes={len(data)}-", "bytes=5-2", "lines=1-2", "bytes=-0"):
        assert http.get(f"/{digest}", headers={"Range": bad}).status_code == 416, bad
    assert http.head(f"/{'ab' * 32}").status_code == 404
    assert http.get(f"/{'ab' * 32}").json()["error"]["code"] == "object_not_found"


@pytest.mark.parametrize("path", [
    "/..%2F..%2Fetc%2Fpasswd", "/%2e%2e", "/ABCDEF" + "0" * 58, "/" + "a" * 63 + "%00",
    "/records/..%2F..%2Fconfig.toml", "/records/data/%2e%2e/x", "/records/a%00b",
    "/records/.hidden", "/uploads/..%2Fx",
])
def test_names_that_would_escape_the_store_are_refused(server, http, path):
    for method in ("GET", "PUT", "PATCH", "POST", "DELETE"):
        response = http.request(method, path, content=b"x",
                                headers={"Upload-Offset": "0"})
        assert 400 <= response.status_code < 500, (method, path, response.status_code)
    root = server.project.settings.project_dir
    assert not (root.parent / "etc").exists() and not (root / "x").exists()


def test_bounds_on_lists_and_bodies(http):
    too_many = [f"{i:064x}" for i in range(101)]
    assert http.post("/missing", json={"digests": too_many}).status_code == 422
    assert http.post("/missing", json={"digests": ["nope"]}).status_code == 422
    assert http.post("/missing", json={"digests": too_many[:3]}).json() == {
        "missing": too_many[:3]}
    big = os.urandom((1 << 20) + 1)
    response = http.put(f"/{hash_bytes(big)}", content=big)
    assert response.status_code == 413 and "resumable" in response.json()["error"]["message"]
    assert http.put("/records/r/big", content=b"x" * 1025).status_code == 413
    assert http.post(f"/uploads/{hash_bytes(big)}", json={"size": 1 << 50}).status_code == 413
    assert http.post(f"/uploads/{hash_bytes(big)}", json={"size": -1}).status_code == 422


def test_records_are_written_once(http):
    assert http.get("/records/data/train/1.json").status_code == 404
    assert http.put("/records/data/train/1.json", content=b"a").status_code == 201
    again = http.put("/records/data/train/1.json", content=b"b")
    assert again.status_code == 200 and again.content == b"a"
    assert http.get("/records", params={"folder": "data/train"}).json() == {
        "names": ["1.json"]}


def _raw_upload_parts(http: httpx.Client, digest: str, data: bytes, parts: int,
                      part: int) -> None:
    state = http.post(f"/uploads/{digest}", json={"size": len(data)}).json()
    assert state == {"digest": digest, "offset": 0, "size": len(data), "stored": False}
    for i in range(parts):
        response = http.patch(f"/uploads/{digest}", content=data[i * part:(i + 1) * part],
                              headers={"Upload-Offset": str(i * part)})
        assert response.status_code == 200, response.text
        assert response.json()["offset"] == (i + 1) * part


def test_resumable_upload_survives_a_restart_of_the_server(tmp_path):
    project = Project.init(tmp_path / "server")
    part = 256 << 10
    data = os.urandom(5 * part + 123)
    digest = hash_bytes(data)
    first = ObjectServer(project, limits=LIMITS).start()
    with httpx.Client(base_url=first.url + "/api/v1/objects", timeout=10) as http:
        _raw_upload_parts(http, digest, data, 2, part)
        # a part that does not start where the server is: 409 with the right offset
        stale = http.patch(f"/uploads/{digest}", content=data[:part],
                           headers={"Upload-Offset": "0"})
        assert stale.status_code == 409 and stale.json()["offset"] == 2 * part
    first.stop()
    assert not project.objects.exists(digest)
    with ObjectServer(project, limits=LIMITS, port=first.port) as second, \
            httpx.Client(base_url=second.url + "/api/v1/objects", timeout=10) as http:
        head = http.head(f"/uploads/{digest}")
        assert head.headers["upload-offset"] == str(2 * part)  # nothing acknowledged lost
        sent: list[int] = []
        http.event_hooks["request"].append(
            lambda r: sent.append(int(r.headers["upload-offset"])) if r.method == "PATCH"
            else None)
        store = HttpObjectStore(second.url, part_size=part)
        store._client.event_hooks["request"].append(
            lambda r: sent.append(int(r.headers["upload-offset"])) if r.method == "PATCH"
            else None)
        assert store.put_chunk(digest, data) is True
        assert sent[0] == 2 * part  # the client continued; it did not start again
        assert project.objects.get_bytes(digest) == data
        assert not list((project.settings.project_dir / "uploads").glob(f"{digest}.*"))
        store.close()


def test_a_resumable_upload_with_the_wrong_bytes_stores_nothing(server, http):
    part = 1 << 19
    data = os.urandom(2 * part)
    digest = hash_bytes(b"something else")
    _raw_upload_parts(http, digest, data, 1, part)
    last = http.patch(f"/uploads/{digest}", content=data[part:],
                      headers={"Upload-Offset": str(part)})
    assert last.status_code == 422
    assert list(server.project.objects.iter_digests()) == []
    assert http.head(f"/uploads/{digest}").status_code == 404  # the upload is gone too
    beyond = http.post(f"/uploads/{digest}", json={"size": 10}).json()
    assert beyond["offset"] == 0
    too_long = http.patch(f"/uploads/{digest}", content=b"x" * 11,
                          headers={"Upload-Offset": "0"})
    assert too_long.status_code == 422
    assert http.head(f"/uploads/{digest}").headers["upload-offset"] == "0"


def _roles(request: Request, need: str) -> Identity:
    """The role named by the test's X-Role header: reader, writer or admin."""
    role = request.headers.get("x-role")
    if role is None:
        raise TokenError("No token: send Authorization: Bearer <token>.")
    identity = Identity("t", role)
    if not identity.allows(need):
        raise ForbiddenError(f"The {role} role may not do this (it needs {need}).")
    return identity


def test_roles(tmp_path):
    with ObjectServer(Project.init(tmp_path / "server"), authorize=_roles) as server, \
            httpx.Client(base_url=server.url + "/api/v1/objects") as http:
        digest = hash_bytes(b"x")
        assert http.put(f"/{digest}", content=b"x").status_code == 401
        assert http.put(f"/{digest}", content=b"x",
                        headers={"x-role": "reader"}).status_code == 403
        assert http.put(f"/{digest}", content=b"x",
                        headers={"x-role": "writer"}).status_code == 201
        reader = {"x-role": "reader"}
        assert http.get(f"/{digest}", headers=reader).content == b"x"
        assert http.get("", headers=reader).status_code == 403  # listing: admin only
        assert http.delete(f"/{digest}", headers={"x-role": "writer"}).status_code == 403
        assert http.get("", headers={"x-role": "admin"}).text == f"{digest}\n"
        assert http.delete(f"/{digest}", headers={"x-role": "admin"}).status_code == 204


def test_a_server_on_s3_redirects_downloads_to_presigned_urls(tmp_path, s3_bucket):
    """The team setup ``mloop server --objects s3://bucket/prefix``: uploads go through
    the server into S3; a client that asks for it downloads from S3 directly."""
    project = Project.init(tmp_path / "server", objects_uri=f"{s3_bucket}/objects")
    with ObjectServer(project, limits=LIMITS) as server:
        store = HttpObjectStore(server.url, token="mloop_t_secret", presign=True,
                                part_size=1 << 19)
        small, large = os.urandom(1000), os.urandom((1 << 20) + 17)
        d1 = store.put_bytes(small)
        d2 = store.put_bytes(large)  # resumable: three parts
        assert project.objects.get_bytes(d2) == large
        hops: list[str] = []
        store._client.event_hooks["response"].append(
            lambda r: hops.append(f"{r.status_code} {r.url.host}:{r.url.port}"))
        to_s3: list[httpx.Request] = []
        store._client.event_hooks["request"].append(
            lambda r: to_s3.append(r) if r.url.port != server.port else None)
        assert store.get_bytes(d1) == small
        out = tmp_path / "out.bin"
        store.get_file(d2, out)
        assert out.read_bytes() == large
        assert [h.split()[0] for h in hops] == ["307", "200", "307", "200"], hops
        assert hops[0].endswith(f":{server.port}") and not hops[1].endswith(f":{server.port}")
        assert len(to_s3) == 2 and not any("authorization" in r.headers for r in to_s3)
        plain = HttpObjectStore(server.url)  # without presign the server streams the bytes
        assert plain.get_bytes(d2) == large
        assert plain.missing([d1, d2, hash_bytes(b"no")]) == {hash_bytes(b"no")}
        store.close()
        plain.close()


def test_two_clients_uploading_the_same_large_blob_at_once(server):
    from concurrent.futures import ThreadPoolExecutor

    data = os.urandom(6 * (128 << 10) + 5)
    stores = [HttpObjectStore(server.url, part_size=128 << 10, backoff=0.01, retries=20)
              for _ in range(3)]
    try:
        with ThreadPoolExecutor(3) as pool:
            new = list(pool.map(lambda s: s.put_chunk(hash_bytes(data), data), stores))
    finally:
        for s in stores:
            s.close()
    assert sum(new) == 1  # one of them wrote it; the others found it there
    assert server.project.objects.get_bytes(hash_bytes(data)) == data
    assert not list((server.project.settings.project_dir / "uploads").glob("*.part"))


def test_the_routes_are_in_the_openapi_schema(tmp_path):
    from fastapi import FastAPI

    from mloop.server.app import no_auth
    from mloop.server.objects import make_router

    app = FastAPI()
    app.include_router(make_router(Project.init(tmp_path / "p"), no_auth))
    paths = app.openapi()["paths"]
    missing = paths["/api/v1/objects/missing"]["post"]
    assert "digests" in missing["requestBody"]["content"]["application/json"]["schema"][
        "properties"]
    assert {"head", "get", "put", "delete"} <= set(paths["/api/v1/objects/{digest}"])
    assert {"post", "head", "patch", "delete"} <= set(paths["/api/v1/objects/uploads/{digest}"])


def test_abandoned_uploads_are_swept(tmp_path):
    project = Project.init(tmp_path / "server")
    limits = ObjectLimits(stale_upload_seconds=60)
    uploads = project.settings.project_dir / "uploads"
    (uploads / "tmp").mkdir(parents=True)
    old = [uploads / f"{'ab' * 32}.part", uploads / f"{'ab' * 32}.json",
           uploads / "tmp" / "x.put"]
    for path in old:
        path.write_bytes(b"x")
        os.utime(path, (1, 1))
    with ObjectServer(project, limits=limits) as server, \
            httpx.Client(base_url=server.url + "/api/v1/objects") as http:
        fresh = hash_bytes(b"new")
        assert http.post(f"/uploads/{fresh}", json={"size": 3}).json()["offset"] == 0
        assert not any(p.exists() for p in old)
        assert (uploads / f"{fresh}.part").exists()  # the upload just started stays
        assert http.delete(f"/uploads/{fresh}").status_code == 204
        assert not (uploads / f"{fresh}.part").exists()


def test_mounted_in_the_team_servers_app(tmp_path):
    """The lead's create_app with this router: its error handlers, its version check."""
    from mloop.objects import http as client_module
    from mloop.server import app as app_module
    from mloop.server.objects import make_router
    from tests.server.live import LiveServer

    assert client_module.API_VERSION == app_module.API_VERSION
    project = Project.init(tmp_path / "server")
    app = app_module.create_app(project, routers=[make_router(project, app_module.no_auth)])
    with LiveServer(app) as live, HttpObjectStore(live.url) as store:
        digest = store.put_bytes(b"through the team server")
        assert store.get_bytes(digest) == b"through the team server"
        assert store.get_record("data/none/1.json") is None
        assert store.missing([digest, "ab" * 32]) == {"ab" * 32}
        with httpx.Client(base_url=live.url) as http:
            wrong = http.put(f"/api/v1/objects/{'cd' * 32}", content=b"x")
            assert wrong.status_code == 422
            assert wrong.json()["error"]["code"] == "invalid_input"
            newer = http.get(f"/api/v1/objects/{digest}", headers={"X-Mloop-Api": "2"})
            assert newer.status_code == 400
            assert newer.json()["error"]["code"] == "version_mismatch"
