"""HttpObjectStore against a real server: resumed uploads across a restart, a server
that cannot be reached, corrupt bytes in transit, and the server's errors as mloop's."""

from __future__ import annotations

import os
import threading
import time

import httpx
import pytest
from fastapi import Request

from mloop.core.hashing import hash_bytes
from mloop.core.identity import Identity
from mloop.errors import (
    CorruptObjectError,
    InvalidInputError,
    ObjectNotFoundError,
    ServiceUnavailableError,
    TokenError,
)
from mloop.objects import object_relpath, open_object_store
from mloop.objects.http import HttpObjectStore
from mloop.objects.local import LocalObjectStore
from mloop.project import Project
from tests.objects.servers import AppServer, ObjectServer, free_port

PART = 128 << 10


def test_put_file_resumes_after_the_server_restarts_mid_upload(tmp_path):
    """The server is stopped after two parts (the third fails to connect) and a new one
    started on the same project and port: the client retries with backoff, asks the new
    server for the offset and sends only the rest."""
    project = Project.init(tmp_path / "server")
    servers = [ObjectServer(project).start()]
    store = HttpObjectStore(servers[0].url, part_size=PART, backoff=0.05, retries=8)
    offsets: list[int] = []

    def on_request(request: httpx.Request) -> None:
        if request.method != "PATCH":
            return
        offsets.append(int(request.headers["upload-offset"]))
        if len(offsets) == 3:  # two parts are on the server's disk: stop it now, so
            servers[0].stop()  # this part fails, and start another a moment later
            restart.start()

    def start_again() -> None:
        servers.append(ObjectServer(project, port=servers[0].port).start())

    restart = threading.Timer(0.3, start_again)

    store._client.event_hooks["request"].append(on_request)
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(5 * PART + 7))
    try:
        digest = store.put_file(src)
    finally:
        restart.join()
        servers[-1].stop()
        store.close()
    assert len(servers) == 2
    assert project.objects.get_bytes(digest) == src.read_bytes()
    assert offsets[:3] == [0, PART, 2 * PART]
    assert offsets[3:] == [2 * PART, 3 * PART, 4 * PART, 5 * PART]  # resumed, not restarted


def test_an_unreachable_server_is_service_unavailable_naming_it(tmp_path, request):
    url = f"http://127.0.0.1:{free_port()}"
    store = HttpObjectStore(url, retries=2, backoff=0.01)
    request.addfinalizer(store.close)
    started = time.monotonic()
    calls = [lambda: store.put_bytes(b"x"), lambda: store.get_bytes("ab" * 32),
             lambda: store.get_file("ab" * 32, tmp_path / "f"), lambda: store.exists("ab" * 32),
             lambda: store.missing({"ab" * 32}), lambda: list(store.iter_digests()),
             lambda: store.get_record("a/b")]
    for call in calls:
        with pytest.raises(ServiceUnavailableError) as info:
            call()
        assert info.value.exit_code == 69
        assert f"The mloop server at {url} cannot be reached" in str(info.value)
        assert "after 3 attempts" in str(info.value)
    assert time.monotonic() - started < 5
    assert not (tmp_path / "f").exists()


def test_corrupt_bytes_on_the_server_are_caught_by_the_client(tmp_path):
    project = Project.init(tmp_path / "server")
    with ObjectServer(project) as server:
        store = HttpObjectStore(server.url)
        digest = store.put_bytes(b"precious")
        assert isinstance(project.objects, LocalObjectStore)
        path = project.objects.root / object_relpath(digest)
        path.chmod(0o644)
        path.write_bytes(b"tampered")
        with pytest.raises(CorruptObjectError):
            store.get_bytes(digest)
        with pytest.raises(CorruptObjectError):
            store.get_file(digest, tmp_path / "out.bin")
        assert not (tmp_path / "out.bin").exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
        with pytest.raises(ObjectNotFoundError):
            store.get_bytes("cd" * 32)
        with pytest.raises(InvalidInputError):  # checked here, before any request
            store.get_bytes("../../etc/passwd")
        store.close()


def test_missing_is_asked_in_batches(tmp_path, monkeypatch):
    monkeypatch.setattr("mloop.objects.http.MISSING_BATCH", 10)
    with ObjectServer(Project.init(tmp_path / "server")) as server:
        store = HttpObjectStore(server.url)
        blobs = [os.urandom(20) for _ in range(5)]
        present = {store.put_bytes(b) for b in blobs}
        asked: list[str] = []
        store._client.event_hooks["request"].append(
            lambda r: asked.append(r.url.path) if r.url.path.endswith("/missing") else None)
        absent = {hash_bytes(str(i).encode()) for i in range(20)}
        assert store.missing(present | absent) == absent
        assert len(asked) == 3  # 25 digests, 10 a request
        store.close()


def _token(request: Request, need: str) -> Identity:
    if request.headers.get("authorization") != "Bearer mloop_t_s3cret":
        raise TokenError("Unknown token: create one with `mloop server token create`.")
    assert request.headers["user-agent"].startswith("mloop/")
    return Identity("alice", "writer")


def test_token_and_the_servers_errors(tmp_path):
    with ObjectServer(Project.init(tmp_path / "server"), authorize=_token) as server:
        with pytest.raises(TokenError, match="Unknown token"), \
                HttpObjectStore(server.url) as anonymous:
            anonymous.put_bytes(b"x")
        store = HttpObjectStore(server.url, token="mloop_t_s3cret")
        digest = store.put_bytes(b"x")
        assert store.get_bytes(digest) == b"x"
        assert "s3cret" not in repr(store)
        store.close()


def test_open_object_store_leaves_http_urls_to_fsspec():
    """The project decides when an http store URI means a server (see the lead's
    wiring); open_object_store itself does not route http URLs here."""
    assert not isinstance(open_object_store("http://127.0.0.1:1/x"), HttpObjectStore)


def test_data_push_and_pull_through_the_server_send_only_what_is_missing(tmp_path,
                                                                         monkeypatch):
    """``data push`` with the server's object store as the remote: the chunks travel in
    one batched look-up and one PUT each, a second push sends nothing, and a clone pulls
    the version back through the server."""
    import mloop
    from mloop.data import sync

    with ObjectServer(Project.init(tmp_path / "server")) as server, \
            HttpObjectStore(server.url) as remote:
        monkeypatch.setattr(sync, "open_remote", lambda project, name: remote)
        requests: list[str] = []
        remote._client.event_hooks["request"].append(
            lambda r: requests.append(r.method))
        project = mloop.init(tmp_path / "p")
        (project.root / "t.csv").write_text("a,b\n" + "".join(f"{i},{i * i}\n"
                                                            for i in range(20_000)))
        mloop.data.add(project.root / "t.csv", project=project)
        first = sync.push(project, quiet=True)
        assert first.sent == first.blobs > 0
        assert requests.count("POST") == 1 and requests.count("PUT") == first.sent + 1
        requests.clear()
        again = sync.push(project, quiet=True)
        assert again.sent == 0 and "PUT" not in requests
        clone = mloop.init(tmp_path / "clone")
        done = sync.pull(clone, targets=["t@1"], quiet=True)
        assert done.sent == first.blobs


class _DropsOnce:
    """The server's store, except that the first download of a blob breaks off after
    ``cut`` bytes (as a dropped connection would)."""

    def __init__(self, store, cut: int) -> None:
        self.store, self.cut, self.dropped = store, cut, 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    def open_blob(self, digest):
        blob = self.store.open_blob(digest)
        if self.dropped:
            return blob
        self.dropped += 1
        outer = self

        class Breaks:
            def seek(self, at):
                return blob.seek(at)

            def read(self, n):
                if blob.tell() >= outer.cut:
                    raise ConnectionResetError("the link went down")
                return blob.read(min(n, outer.cut - blob.tell()))

            def close(self):
                blob.close()

        return Breaks()


def test_get_file_continues_a_broken_download_with_a_range_request(tmp_path):
    project = Project.init(tmp_path / "server")
    data = os.urandom(3 << 20)
    digest = project.objects.put_bytes(data)
    flaky = _DropsOnce(project.objects, cut=(1 << 20) + 5)
    project.__dict__["objects"] = flaky  # the server's store, as Project caches it
    ranges: list[str | None] = []
    with ObjectServer(project) as server, HttpObjectStore(server.url, backoff=0.01) as store:
        store._client.event_hooks["request"].append(
            lambda r: ranges.append(r.headers.get("range")) if r.method == "GET" else None)
        store.get_file(digest, tmp_path / "out.bin")
    assert flaky.dropped == 1
    assert (tmp_path / "out.bin").read_bytes() == data
    assert len(ranges) == 2 and ranges[0] is None
    resumed_at = int(ranges[1].removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= flaky.cut  # the rest, not the whole again


def test_a_server_without_the_object_routes_is_named_as_such():
    from mloop.errors import ConfigError

    with AppServer() as server, HttpObjectStore(server.url) as store:  # a bare FastAPI
        with pytest.raises(ConfigError, match="does not answer the object routes"):
            store.get_bytes("ab" * 32)
        with pytest.raises(ConfigError):
            store.get_record("data/x")
