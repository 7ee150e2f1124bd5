"""A remote object store that cannot be reached is a ServiceUnavailableError (exit 69)
naming it with secrets hidden, never a transport library's traceback."""

from __future__ import annotations

import shutil
import socket

import pytest

import mloop
from mloop.errors import ObjectNotFoundError, ServiceUnavailableError
from mloop.objects import open_object_store
from mloop.objects.remote import FsspecObjectStore
from tests.cli.test_cli import run_cli

DIGEST = "ab" * 32


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def unreachable() -> str:
    return f"http://user:hunter2@127.0.0.1:{_closed_port()}/store"


CALLS = {
    "put": lambda s: s.put_bytes(b"x"), "get": lambda s: s.get_bytes(DIGEST),
    "get-file": lambda s, tmp: s.get_file(DIGEST, tmp / "f"),
    "exists": lambda s: s.exists(DIGEST), "missing": lambda s: s.missing({DIGEST}),
    "missing-many": lambda s: s.missing({f"{i:02x}" * 32 for i in range(20)}),
    "size": lambda s: s.size(DIGEST), "iter": lambda s: list(s.iter_digests()),
    "delete": lambda s: s.delete(DIGEST),
}


def _call(name, store, tmp_path):
    fn = CALLS[name]
    return fn(store, tmp_path) if name == "get-file" else fn(store)


def _assert_unavailable(info: pytest.ExceptionInfo[ServiceUnavailableError]) -> None:
    message = str(info.value)
    assert "cannot be used" in message
    assert "hunter2" not in message and "***" in message
    assert info.value.exit_code == 69


# fsspec's HTTP driver reads a connection failure in exists/info as "not found", so only
# the calls that transfer or list reach the transport's error there.
@pytest.mark.parametrize("name", ["put", "get", "get-file", "missing-many", "iter"])
def test_http_store_that_refuses_connections(unreachable, name, tmp_path):
    store = open_object_store(unreachable)
    with pytest.raises(ServiceUnavailableError) as info:
        _call(name, store, tmp_path)
    _assert_unavailable(info)
    assert "127.0.0.1" in str(info.value)


class _BotoLike(Exception):
    """What botocore raises when an endpoint cannot be reached (not an OSError)."""


_BotoLike.__module__ = "botocore.exceptions"


class _DeadFileSystem:
    """Every call fails as the transport underneath would."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __getattr__(self, _name: str):
        def fail(*_args, **_kwargs):
            raise self.error
        return fail


@pytest.mark.parametrize("error", [ConnectionRefusedError(111, "Connection refused"),
                                   TimeoutError("timed out"), PermissionError(13, "denied"),
                                   _BotoLike("Could not connect to the endpoint URL"),
                                   OSError(101, "Network is unreachable")],
                         ids=["refused", "timeout", "denied", "botocore", "oserror"])
@pytest.mark.parametrize("name", list(CALLS))
def test_every_operation_maps_transport_errors(tmp_path, name, error):
    store = FsspecObjectStore("memory://user:hunter2@bucket/prefix")
    store.fs = _DeadFileSystem(error)
    with pytest.raises(ServiceUnavailableError) as info:
        _call(name, store, tmp_path)
    _assert_unavailable(info)


def test_a_missing_blob_is_still_not_found():
    store = FsspecObjectStore("memory://bucket/prefix")
    with pytest.raises(ObjectNotFoundError):
        store.get_bytes(DIGEST)
    store.fs = _DeadFileSystem(ValueError("a bug, not the network"))
    with pytest.raises(ValueError):
        store.get_bytes(DIGEST)


def test_push_and_pull_to_an_unreachable_remote_exit_69(tmp_path):
    # a data remote over HTTP takes no credentials (`remote add` refuses them in its URL)
    unreachable = f"http://127.0.0.1:{_closed_port()}/store"
    project = mloop.init(tmp_path / "p")
    (project.root / "t.csv").write_text("a\n1\n")
    mloop.data.add(project.root / "t.csv", project=project)
    assert run_cli("remote", "add", "origin", unreachable, cwd=project.root).returncode == 0
    for verb in ("push", "pull"):
        if verb == "pull":  # as on another machine: the versions are known, not their bytes
            shutil.rmtree(project.root / ".mloop" / "objects")
        out = run_cli("data", verb, cwd=project.root, check=False)
        assert out.returncode == 69, out.stderr
        assert out.stderr.startswith("Error: The object store at http://127.0.0.1")
        assert "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
