"""A full disk is one clear error and leaves no temporary file behind (issue 13 §4)."""

import errno
import os
import subprocess
import sys
import time

import pytest

import mloop
from mloop.core.hashing import hash_bytes
from mloop.errors import DiskFullError
from mloop.objects import LocalObjectStore
from mloop.objects import local as local_module


def _full_after(monkeypatch, budget: int) -> None:
    """os.write in the object store fails with ENOSPC once ``budget`` bytes are written."""
    real = os.write
    left = [budget]

    def write(fd, data):
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real(fd, bytes(data)[:max(1, min(len(data), left[0]))])
        left[0] -= n
        return n

    monkeypatch.setattr(local_module.os, "write", write)


def _temp_files(root):
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("how", ["put_bytes", "put_chunk", "put_file"])
def test_each_write_raises_disk_full_and_removes_its_temp_file(tmp_path, monkeypatch, how):
    store = LocalObjectStore(tmp_path / "objects")
    data = os.urandom(100_000)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    _full_after(monkeypatch, 10_000)
    with pytest.raises(DiskFullError, match="No space left on the device holding"):
        if how == "put_bytes":
            store.put_bytes(data)
        elif how == "put_chunk":
            store.put_chunk(hash_bytes(data), data)
        else:
            store.put_file(source)
    assert _temp_files(store.root) == []
    assert list(store.iter_digests()) == []


def test_gc_removes_stale_temp_files_and_keeps_fresh_ones(sqlite_project):
    store = sqlite_project.objects
    folder = store.root / "ab"
    folder.mkdir(exist_ok=True)
    stale = folder / f"{'c' * 62}.4242.1.tmp"
    stale_tmp = store.root / "tmp" / "tmpxyz.tmp"
    fresh = folder / f"{'d' * 62}.{os.getpid()}.1.tmp"
    for path in (stale, stale_tmp, fresh):
        path.write_bytes(b"half a blob")
    hour_ago = time.time() - 3600
    for path in (stale, stale_tmp):
        os.utime(path, (hour_ago, hour_ago))
    dry = mloop.data.gc(dry_run=True)
    assert dry.temp_files == 2 and stale.exists()
    result = mloop.data.gc()
    assert (result.temp_files, result.temp_bytes) == (2, 22)
    assert not stale.exists() and not stale_tmp.exists() and fresh.exists()


def _mloop(cwd, *args, env=None):
    return subprocess.run([sys.executable, "-m", "mloop", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_data_add_on_a_full_disk_is_one_line_and_leaves_no_temp_file(tmp_path, tiny_disk):
    project = tmp_path / "proj"
    mloop.init(project)
    (project / "big.bin").write_bytes(os.urandom(3 << 20))  # 3 MiB onto a 1 MiB disk
    env = dict(os.environ, MLOOP_OBJECTS_URI=str(tiny_disk / "objects"))
    out = _mloop(project, "data", "add", "big.bin", env=env)
    assert out.returncode == DiskFullError.exit_code == 69, out.stderr
    assert "Traceback" not in out.stderr and "Errno" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on the device holding" in lines[0], out.stderr
    assert _temp_files(tiny_disk) == []
    assert _mloop(project, "data", "list", env=env).stdout.count("big") == 0
