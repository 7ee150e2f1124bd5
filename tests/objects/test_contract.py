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
from mloop.objects.http import HttpObjectStore
from mloop.project import Project
from tests.objects.servers import ObjectServer


@pytest.fixture(params=["local", "fsspec-memory", "memory", "http", "s3"])
def objects(request, tmp_path):
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "objects")
    elif request.param == "fsspec-memory":
        yield FsspecObjectStore(f"memory://mloop-{uuid.uuid4().hex}")
    elif request.param == "http":  # a real server on 127.0.0.1 over a local project
        with ObjectServer(Project.init(tmp_path / "server")) as server:
            store = HttpObjectStore(server.url)
            yield store
            store.close()
    elif request.param == "s3":  # a real S3-protocol server (moto) on 127.0.0.1
        yield FsspecObjectStore(f"{request.getfixturevalue('s3_bucket')}/prefix")
    else:
        yield MemoryObjectStore()


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


# -- bulk writes: put_chunk, then one sync (or forget_unsynced) ------------------------


def test_put_chunk_writes_a_new_blob_once(objects):
    data = os.urandom(5000)
    digest = hash_bytes(data)
    assert objects.put_chunk(digest, data) is True
    assert objects.put_chunk(digest, data) is False  # already stored: not written again
    assert objects.put_bytes(data) == digest  # the same blob, whichever way it came
    assert objects.get_bytes(digest) == data  # verified against its name
    assert objects.size(digest) == len(data)
    assert set(objects.iter_digests()) == {digest}
    objects.sync()
    assert objects.get_bytes(digest) == data


def test_put_chunk_takes_a_slice_of_a_buffer(objects, tmp_path):
    block = memoryview(os.urandom(9000))
    piece = block[1000:4000]
    digest = hash_bytes(piece)
    assert objects.put_chunk(digest, piece)
    objects.sync()
    assert objects.get_bytes(digest) == bytes(piece)
    objects.get_file(digest, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == bytes(piece)


def test_put_chunk_rejects_non_digests(objects):
    with pytest.raises(InvalidInputError):
        objects.put_chunk("../../etc/passwd", b"x")


@pytest.mark.parametrize("hint", [False, True])
def test_put_chunk_source_hint_stores_the_same_blob(objects, tmp_path, monkeypatch, hint):
    """``source`` names a file holding the same bytes: a store that copies from files
    does (in the kernel), the others ignore it; the blob is the same either way."""
    copies = []
    real = getattr(os, "copy_file_range", None)
    if real is not None:
        def spy(*args, **kwargs):
            copies.append(args)
            return real(*args, **kwargs)
        monkeypatch.setattr(os, "copy_file_range", spy)
    payload = os.urandom(3 << 20)
    path = tmp_path / "src.bin"
    path.write_bytes(b"head" + payload + b"tail")
    digest = hash_bytes(payload)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert objects.put_chunk(digest, memoryview(payload), (fd, 4) if hint else None)
        assert not objects.put_chunk(digest, memoryview(payload), (fd, 4) if hint else None)
    finally:
        os.close(fd)
    objects.sync()
    assert objects.get_bytes(digest) == payload
    assert isinstance(objects.copies_from_source, bool)
    if real is not None:
        assert bool(copies) == (hint and objects.copies_from_source)


def test_put_chunk_from_many_threads(objects):
    from concurrent.futures import ThreadPoolExecutor

    blobs = [os.urandom(2000) for _ in range(40)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda b: objects.put_chunk(hash_bytes(b), b), blobs + blobs))
    objects.sync()
    assert set(objects.iter_digests()) == {hash_bytes(b) for b in blobs}
    assert all(objects.get_bytes(hash_bytes(b)) == b for b in blobs)


@pytest.fixture
def flushes(monkeypatch):
    """Every fsync (of a file descriptor) and system-wide sync made while a test runs."""
    seen: list[object] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (seen.append(fd), real_fsync(fd))[1])
    monkeypatch.setattr(os, "sync", lambda: seen.append("all"))
    return seen


def test_sync_and_forget_unsynced(objects, flushes):
    """``sync`` flushes what ``put_chunk`` wrote (where writes are not final on return:
    the local folder); after ``forget_unsynced`` it has nothing left to flush. Both are
    safe to call any time, repeatedly."""
    objects.sync()
    objects.forget_unsynced()
    assert flushes == []
    # a server in this process fsyncs each blob before it answers: not the client's flush
    served = isinstance(objects, HttpObjectStore)
    kept = os.urandom(100)
    objects.put_chunk(hash_bytes(kept), kept)
    if served:
        flushes.clear()
    objects.forget_unsynced()
    objects.sync()
    assert flushes == []  # forgotten: nothing to flush
    data = os.urandom(100)
    objects.put_chunk(hash_bytes(data), data)
    if served:
        flushes.clear()
    objects.sync()
    assert bool(flushes) == isinstance(objects, LocalObjectStore)
    flushes.clear()
    objects.sync()
    assert flushes == []  # each blob is flushed once
    assert objects.get_bytes(hash_bytes(kept)) == kept
    assert objects.get_bytes(hash_bytes(data)) == data


def test_local_sync_flushes_each_blob_and_folder_or_once_for_many(tmp_path, flushes):
    store = LocalObjectStore(tmp_path / "objects")
    few = [os.urandom(64) for _ in range(3)]
    for b in few:
        store.put_chunk(hash_bytes(b), b)
    store.sync()
    folders = {hash_bytes(b)[:2] for b in few}
    assert "all" not in flushes and len(flushes) == len(few) + len(folders)
    flushes.clear()
    for b in (os.urandom(64) for _ in range(65)):  # many: one system-wide sync is cheaper
        store.put_chunk(hash_bytes(b), b)
    store.sync()
    assert flushes == ["all"]
