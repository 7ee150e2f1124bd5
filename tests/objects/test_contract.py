"""Every object store passes the same contract."""

import os
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mloop.core.hashing import hash_bytes
from mloop.errors import CorruptObjectError, InvalidInputError, ObjectNotFoundError
from mloop.objects import (
    FsspecObjectStore,
    LocalObjectStore,
    MemoryObjectStore,
    object_relpath,
    open_object_store,
)


@pytest.fixture(params=["local", "fsspec-memory", "memory"])
def objects(request, tmp_path):
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    if request.param == "fsspec-memory":
        return FsspecObjectStore(f"memory://mloop-{uuid.uuid4().hex}")
    return MemoryObjectStore()


def test_put_get_round_trip_and_dedup(objects, tmp_path):
    d1 = objects.put_bytes(b"hello")
    assert d1 == hash_bytes(b"hello")
    assert objects.put_bytes(b"hello") == d1
    assert objects.get_bytes(d1) == b"hello"
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(3 << 20))
    d2 = objects.put_file(src)
    assert objects.size(d2) == 3 << 20
    objects.get_file(d2, tmp_path / "out" / "copy.bin")
    assert (tmp_path / "out" / "copy.bin").read_bytes() == src.read_bytes()
    assert set(objects.iter_digests()) == {d1, d2}
    assert objects.missing([d1, d2, hash_bytes(b"nope")]) == {hash_bytes(b"nope")}


def test_missing_and_delete(objects):
    d = objects.put_bytes(b"x")
    objects.delete(d)
    objects.delete(d)  # idempotent
    assert not objects.exists(d)
    with pytest.raises(ObjectNotFoundError):
        objects.get_bytes(d)


def test_rejects_non_digests(objects):
    with pytest.raises(InvalidInputError):
        objects.get_bytes("../../etc/passwd")


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096))
def test_any_bytes_round_trip(objects, data):
    assert objects.get_bytes(objects.put_bytes(data)) == data


def test_layout_and_readonly_blobs(tmp_path):
    store = LocalObjectStore(tmp_path)
    d = store.put_bytes(b"content")
    path = tmp_path / object_relpath(d)
    assert path.parent.name == d[:2] and path.name == d[2:]
    assert not os.access(path, os.W_OK) or os.geteuid() == 0
    assert oct(path.stat().st_mode & 0o777) == oct(0o444)
    assert list((tmp_path / "tmp").iterdir()) == []  # no temp file left behind


def test_corruption_is_detected_on_read(tmp_path):
    store = LocalObjectStore(tmp_path)
    d = store.put_bytes(b"precious")
    path = tmp_path / object_relpath(d)
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(CorruptObjectError, match="corrupt"):
        store.get_bytes(d)
    dest = tmp_path / "out.bin"
    with pytest.raises(CorruptObjectError):
        store.get_file(d, dest)
    assert not dest.exists()  # nothing half-written


def test_memory_fake_detects_corruption():
    store = MemoryObjectStore()
    d = store.put_bytes(b"a")
    store.corrupt_for_test(d, b"b")
    with pytest.raises(CorruptObjectError):
        store.get_bytes(d)


def test_open_object_store_picks_backend(tmp_path):
    assert isinstance(open_object_store(str(tmp_path)), LocalObjectStore)
    assert isinstance(open_object_store(f"file://{tmp_path}"), LocalObjectStore)
    assert isinstance(open_object_store("memory://x"), FsspecObjectStore)


def test_named_records_are_written_once(objects):
    assert objects.get_record("data/train/4.json") is None
    assert objects.list_records("data/train") == []
    assert objects.put_record("data/train/4.json", b'{"tree": "a"}') is None
    # a second writer of the same name learns what is there; nothing is replaced
    assert objects.put_record("data/train/4.json", b'{"tree": "b"}') == b'{"tree": "a"}'
    assert objects.get_record("data/train/4.json") == b'{"tree": "a"}'
    objects.put_record("data/train/10.json", b"{}")
    objects.put_record("data/other/1.json", b"{}")
    assert objects.list_records("data/train") == ["10.json", "4.json"]
    assert list(objects.iter_digests()) == []  # records are not blobs
    for bad in ("../x.json", "data//x", "/abs", "data/.hidden", ""):
        with pytest.raises(InvalidInputError):
            objects.get_record(bad)
