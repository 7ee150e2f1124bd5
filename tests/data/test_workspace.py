"""Checkout patches large files chunk by chunk, and falls back to a whole rewrite."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mloop
from mloop.data import chunks
from mloop.data.chunks import chunk_file, patch_file
from mloop.objects import MemoryObjectStore


@pytest.fixture
def small_patch_threshold(monkeypatch):
    monkeypatch.setattr(chunks, "PATCH_MIN_SIZE", 1 << 20)
    from mloop.data import workspace

    monkeypatch.setattr(workspace, "PATCH_MIN_SIZE", 1 << 20)


def _write(path: Path, data: bytes) -> bytes:
    path.write_bytes(data)
    return data


def _spy_patches(monkeypatch):
    from mloop.data import workspace

    calls = []
    real = workspace.patch_file

    def spy(*args):
        ok = real(*args)
        calls.append(ok)
        return ok

    monkeypatch.setattr(workspace, "patch_file", spy)
    return calls


def test_switching_versions_patches_in_place_and_restores_exact_bytes(
        project, small_patch_threshold, monkeypatch):
    path = project.root / "big.bin"
    v1 = _write(path, os.urandom(3 << 20))
    mloop.data.add(path, name="big")
    edited = bytearray(v1)
    edited[1_500_000:1_500_100] = b"x" * 100
    v2 = _write(path, bytes(edited) + os.urandom(300_000))
    mloop.data.add(path)
    inode = path.stat().st_ino
    calls = _spy_patches(monkeypatch)
    mloop.data.checkout("big@1")
    assert path.read_bytes() == v1 and path.stat().st_ino == inode  # patched, same file
    mloop.data.checkout("big@2")
    assert path.read_bytes() == v2
    assert calls == [True, True]
    assert mloop.data.status()[0].state == "clean"


def test_a_hard_linked_file_is_replaced_not_patched(sqlite_project, small_patch_threshold,
                                                     monkeypatch):
    path = sqlite_project.root / "big.bin"
    v1 = _write(path, os.urandom(2 << 20))
    mloop.data.add(path, name="big")
    v2 = _write(path, v1[:1_000_000] + b"changed" + v1[1_000_007:])
    mloop.data.add(path)
    other = sqlite_project.root / "elsewhere.bin"
    os.link(path, other)
    calls = _spy_patches(monkeypatch)
    mloop.data.checkout("big@1")
    assert path.read_bytes() == v1
    assert other.read_bytes() == v2  # the other name still sees the bytes it had
    assert calls == [False]


def test_an_edited_working_copy_is_rewritten_whole(sqlite_project, small_patch_threshold,
                                                    monkeypatch):
    path = sqlite_project.root / "big.bin"
    v1 = _write(path, os.urandom(2 << 20))
    mloop.data.add(path, name="big")
    _write(path, v1 + b"more")
    mloop.data.add(path)
    _write(path, b"user's own edit" + v1[15:] + b"more")  # not any version: no patch base
    calls = _spy_patches(monkeypatch)
    mloop.data.checkout("big@1")
    assert path.read_bytes() == v1 and calls == []


def test_patch_refuses_a_base_that_is_not_what_it_claims(tmp_path):
    store = MemoryObjectStore()
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(os.urandom(1 << 20))
    b.write_bytes(a.read_bytes()[:500_000] + b"edit" + a.read_bytes()[500_004:])
    ea, eb = chunk_file(store, a, "f"), chunk_file(store, b, "f")
    with open(a, "r+b") as f:  # the file no longer holds ea's bytes
        f.seek(900_000)
        f.write(b"corrupted")
    dest = tmp_path / "a"
    assert patch_file(store, ea, eb, dest) is False  # the caller then rewrites it whole


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1),
       edits=st.lists(st.tuples(st.sampled_from(["replace", "insert", "delete"]),
                                st.floats(0, 1), st.integers(1, 200_000)), max_size=4))
def test_patch_turns_any_version_into_any_other(tmp_path_factory, seed, edits):
    import numpy as np

    folder = tmp_path_factory.mktemp("patch")
    rng = np.random.default_rng(seed)
    base = rng.bytes(1 << 20)
    data = bytearray(base)
    for kind, where, n in edits:
        at = int(where * len(data))
        if kind == "replace":
            data[at:at + n] = rng.bytes(len(data[at:at + n]))
        elif kind == "insert":
            data[at:at] = rng.bytes(n)
        else:
            del data[at:at + n]
    store = MemoryObjectStore()
    src, dst = folder / "src", folder / "dst"
    src.write_bytes(base)
    dst.write_bytes(bytes(data))
    current, target = chunk_file(store, src, "f"), chunk_file(store, dst, "f")
    import mloop.data.chunks as c

    saved = c.PATCH_MIN_SIZE
    c.PATCH_MIN_SIZE = 0
    try:
        patched = patch_file(store, current, target, src)
    finally:
        c.PATCH_MIN_SIZE = saved
    if patched:
        assert src.read_bytes() == bytes(data)
    else:  # declined (too much to rewrite): the file is untouched
        assert src.read_bytes() == base
