"""Chunking: new chunks of large files go into packs; chunks of the version before are reused."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.core.hashing import hash_bytes
from mloop.data import chunks
from mloop.data.chunks import FileEntry, chunk_files, read_entry, restore_file
from mloop.objects import MemoryObjectStore


def _blobs(store):
    return set(store.iter_digests())


def test_a_large_file_is_stored_in_a_few_packs_and_restores_exactly(tmp_path):
    store = MemoryObjectStore()
    path = tmp_path / "big.bin"
    data = os.urandom(10 << 20)
    path.write_bytes(data)
    [entry] = chunk_files(store, [(path, "big.bin")])
    assert len(entry.chunks) > 100  # ~64 KiB chunks …
    assert len(_blobs(store)) <= 4  # … in ~4 MiB packs
    assert len(entry.ids) == len(entry.chunks)
    assert all(hash_bytes(piece) == cid
               for piece, cid in zip(read_entry(store, entry), entry.ids, strict=True))
    restore_file(store, entry, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data


def test_re_adding_after_an_append_stores_only_the_new_chunks(tmp_path):
    store = MemoryObjectStore()
    path = tmp_path / "t.bin"
    base = os.urandom(8 << 20)
    path.write_bytes(base)
    [v1] = chunk_files(store, [(path, "t.bin")])
    before = _blobs(store)
    path.write_bytes(base + os.urandom(100_000))
    [v2] = chunk_files(store, [(path, "t.bin")], previous=[v1])
    new = _blobs(store) - before
    assert len(new) == 1
    assert sum(len(store.get_bytes(d)) for d in new) < 500_000  # the tail, not 8 MiB
    assert b"".join(read_entry(store, v2)) == path.read_bytes()
    shared = set(v1.chunks) & set(v2.chunks)
    assert len(shared) >= len(v1.chunks) - 4  # unchanged chunks keep their place


def test_repeated_content_inside_one_file_is_stored_once(tmp_path):
    store = MemoryObjectStore()
    block = os.urandom(1 << 20)
    path = tmp_path / "rep.bin"
    path.write_bytes(block * 6)
    [entry] = chunk_files(store, [(path, "rep.bin")])
    stored = sum(len(store.get_bytes(d)) for d in _blobs(store))
    assert stored < 2.5 * len(block)
    assert b"".join(read_entry(store, entry)) == block * 6


def test_entries_of_the_one_blob_per_chunk_format_still_read_and_are_reused(tmp_path):
    store = MemoryObjectStore()
    data = os.urandom(2 << 20)
    pieces = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    old = FileEntry("f.bin", len(data), hash_bytes(data),
                    tuple((store.put_bytes(p), len(p), 0) for p in pieces))
    assert FileEntry.from_json(old.to_json()) == old  # no ids in the old format
    assert b"".join(read_entry(store, old)) == data
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    before = _blobs(store)
    [again] = chunk_files(store, [(path, "f.bin")], previous=[old])
    assert b"".join(read_entry(store, again)) == data
    assert FileEntry.from_json(again.to_json()) == again
    # cut points differ from the fixed 64 KiB pieces, so few chunks match; what does is reused
    reused = set(again.chunks) & set(old.chunks)
    assert all(c in old.chunks for c in reused)
    assert len(_blobs(store) - before) <= 2


def test_pack_size_bounds_blob_count(tmp_path, monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK_PACK", 1 << 20)
    store = MemoryObjectStore()
    path = tmp_path / "x.bin"
    path.write_bytes(os.urandom(6 << 20))
    chunk_files(store, [(path, "x.bin")])
    assert 5 <= len(_blobs(store)) <= 8


def _whole_file_cuts(path):
    return [(c.offset, c.length) for c in chunks._cutter().cut_file(str(path))]


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=3_000_000), st.integers(min_value=0, max_value=6),
       st.sampled_from(["random", "repetitive", "zeros", "mixed"]))
def test_two_threads_cut_where_one_does(size, seed, kind):
    """Cutting a block from both halves at once (meeting at a shared cut) must give the
    cuts of one pass, including data where the halves never meet (all zeros)."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(seed)
    data = {"random": lambda: rng.randbytes(size),
            "repetitive": lambda: (rng.randbytes(4096) * (size // 4096 + 1))[:size],
            "zeros": lambda: bytes(size),
            "mixed": lambda: (bytes(size // 2) + rng.randbytes(size))[:size]}[kind]()
    block = memoryview(data)
    one = [(c.offset, c.length) for c in chunks._cutter().cut_buf(block)]
    with ThreadPoolExecutor(max_workers=1) as helper, pytest.MonkeyPatch.context() as m:
        m.setattr(chunks, "SPLIT_MIN", 1)
        two = chunks._cut_block((chunks._cutter(), chunks._cutter()), helper, block)
    assert two == one


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=0, max_value=3_000_000), st.integers(min_value=1, max_value=4),
       st.sampled_from([300_000, 1 << 20]), st.booleans())
def test_block_by_block_cuts_equal_whole_file_cuts(size, seed, block, repetitive):
    """Reading in blocks (carrying each block's last chunk over) must cut exactly where
    cutting the whole file does: earlier versions' chunks are matched by these cuts."""
    import random
    import tempfile
    from pathlib import Path

    rng = random.Random(seed)
    data = ((rng.randbytes(4096) * (size // 4096 + 1))[:size] if repetitive
            else rng.randbytes(size))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.bin"
        path.write_bytes(data)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(chunks, "BLOCK", block)
            m.setattr(chunks, "SPLIT_MIN", 200_000)  # the two-thread cut, at these sizes
            got, pos = [], 0
            for blk, fresh_from, cuts, base in chunks._blocks(path):
                start = pos - fresh_from
                assert base == start  # where the block lies in the file (packs copy it)
                assert bytes(blk) == data[base:base + len(blk)]
                got += [(start + a, n) for a, n in cuts]
                pos += len(blk) - fresh_from
        assert got == (_whole_file_cuts(path) if size else [])
        assert pos == size


def test_threads_change_nothing_a_serial_add_stores(tmp_path, monkeypatch):
    """Large file (blocks hashed on the pool) and many small files (read on the pool):
    the entries and the blobs are those of a run on one thread."""
    monkeypatch.setattr(chunks, "BLOCK", 1 << 20)
    monkeypatch.setattr(chunks, "_READ_BATCH", 7)
    monkeypatch.setattr(chunks, "PACK_SIZE", 64 << 10)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(5 << 20) + bytes(3 << 20) + os.urandom(12345))
    small = []
    for i in range(120):
        f = tmp_path / f"s{i:03d}.bin"
        f.write_bytes(os.urandom(1000 + 37 * i) if i % 10 else b"same bytes")
        small.append((f, f.name))
    threaded, serial = MemoryObjectStore(), MemoryObjectStore()
    entries = chunk_files(threaded, [(big, "big.bin"), *small])
    alone = [chunks.chunk_file(serial, big, "big.bin", None)]
    alone += chunks._pack_small(serial, [(p, rel, p.stat().st_size) for p, rel in small], {},
                                None)
    assert sorted(entries, key=lambda e: e.path) == sorted(alone, key=lambda e: e.path)
    assert _blobs(threaded) == _blobs(serial)
    for entry in entries:
        source = big if entry.path == "big.bin" else tmp_path / entry.path
        assert b"".join(read_entry(threaded, entry)) == source.read_bytes()


def test_a_small_file_that_grew_after_the_walk_is_read_whole(tmp_path):
    path = tmp_path / "grew.txt"
    path.write_bytes(b"x" * 5000)
    [(rel, data, digest)] = chunks._read_small([(path, "grew.txt", 100)])
    assert (rel, data, digest) == ("grew.txt", b"x" * 5000, hash_bytes(b"x" * 5000))


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_packs_copied_from_the_file_equal_packs_written_from_memory(tmp_path, monkeypatch,
                                                                   kernel_copy):
    """A local store copies a new file's packs from the file (copy_file_range); where the
    kernel cannot, it writes the buffer. Either way: the blobs and entry of a store that
    only takes bytes (memory), every blob verifying against its name."""
    from mloop.objects.local import LocalObjectStore

    if not kernel_copy:
        def refuse(*args, **kwargs):
            raise OSError(38, "Function not implemented")
        monkeypatch.setattr(os, "copy_file_range", refuse, raising=False)
    monkeypatch.setattr(chunks, "BLOCK", 1 << 20)
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(6 << 20) + bytes(1 << 20) + os.urandom(54321))
    local, memory = LocalObjectStore(tmp_path / "objects"), MemoryObjectStore()
    [entry] = chunk_files(local, [(path, "big.bin")])
    assert [entry] == chunk_files(memory, [(path, "big.bin")])
    assert _blobs(local) == _blobs(memory)
    assert all(hash_bytes(local.get_bytes(d)) == d for d in _blobs(local))
    restore_file(local, entry, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == path.read_bytes()


def test_a_file_changed_during_the_add_leaves_no_copied_pack(tmp_path, monkeypatch):
    """Packs copied from the file hold its bytes as they are when copied: when the file
    changed meanwhile, the add fails and removes them (a blob must match its name)."""
    from mloop.errors import InvalidInputError
    from mloop.objects.local import LocalObjectStore

    monkeypatch.setattr(chunks, "BLOCK", 1 << 20)
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(3 << 20))
    store = LocalObjectStore(tmp_path / "objects")
    real = chunks._blocks

    def then_edit(*args, **kwargs):
        yield from real(*args, **kwargs)
        with open(path, "r+b") as f:  # same size, new bytes in the last pack, not yet stored
            f.seek(-6, 2)
            f.write(b"edited")
        os.utime(path, ns=(1, 1))
    monkeypatch.setattr(chunks, "_blocks", then_edit)
    with pytest.raises(InvalidInputError, match="changed while mloop was reading it"):
        chunk_files(store, [(path, "big.bin")])
    assert all(hash_bytes(store.get_bytes(d)) == d for d in _blobs(store))


@pytest.mark.parametrize("advice_fails", [False, True])
def test_large_blobs_are_handed_to_the_disk_as_written(tmp_path, monkeypatch, advice_fails):
    """Blobs of 1 MiB and more start their writeback at once (the one sync at the end of
    an add then waits for little); a refused hint changes nothing stored."""
    from mloop.objects import local

    advised = []

    def advise(fd, offset, length, how):
        advised.append(how)
        if advice_fails:
            raise OSError(22, "Invalid argument")
    monkeypatch.setattr(os, "posix_fadvise", advise, raising=False)
    store = local.LocalObjectStore(tmp_path / "objects")
    big, small = os.urandom(local._EARLY_WRITEBACK), os.urandom(1000)
    assert store.put_chunk(hash_bytes(big), big) and store.put_chunk(hash_bytes(small), small)
    store.sync()
    assert advised == [os.POSIX_FADV_DONTNEED]  # the large blob only
    assert store.get_bytes(hash_bytes(big)) == big
    assert store.get_bytes(hash_bytes(small)) == small
