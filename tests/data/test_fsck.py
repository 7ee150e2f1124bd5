"""``mloop fsck`` and re-adds that repair lost blobs (issue 13 §5), SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import mloop
from mloop.data.catalog import read_tree
from mloop.data.fsck import check
from mloop.data.remotes import add_remote
from mloop.objects import open_object_store


def _blobs_of(project, ref):
    version = mloop.data.get(ref, project=project)
    return version, sorted({c[0] for e in read_tree(project, version) for c in e.chunks})


def _delete(project, digest):
    path = project.objects.path(digest)
    os.chmod(path, 0o644)
    path.unlink()


def _damage(project, digest, *, truncate=False):
    path = project.objects.path(digest)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    if truncate:
        del data[len(data) // 2:]
    else:
        data[len(data) // 2] ^= 0xFF  # one flipped bit, same size
    path.write_bytes(bytes(data))


def _cli(project, *args):
    env = dict(os.environ, MLOOP_STORE_URI=project.settings.store_uri)
    return subprocess.run([sys.executable, "-m", "mloop", *args], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def versioned(project):
    big = project.root / "big.bin"
    big.write_bytes(os.urandom(300_000))  # large-file chunks, packed
    folder = project.root / "small"
    folder.mkdir()
    for i in range(5):
        (folder / f"f{i}.txt").write_bytes(os.urandom(1000))  # one pack of small files
    mloop.data.add(big, name="big")
    mloop.data.add(folder, name="small")
    with mloop.start_run() as run:
        mloop.log_text("hello", "notes.txt")
    return project, run.id


def test_a_whole_store_is_clean_and_orphans_are_only_counted(versioned):
    project, _ = versioned
    orphan = project.objects.put_bytes(b"nobody needs me")
    result = mloop.fsck()
    assert result.ok and result.problems == []
    assert result.orphans == 1 and result.orphan_bytes == len(b"nobody needs me")
    out = _cli(project, "fsck")
    assert out.returncode == 0, out.stderr
    assert "No problems" in out.stdout and "1 orphan" in out.stdout
    assert project.objects.exists(orphan)  # fsck never deletes


def test_missing_and_corrupt_blobs_exit_5_and_repair_rebuilds_them_from_the_files(versioned):
    project, _ = versioned
    _, big_blobs = _blobs_of(project, "big")
    _, small_blobs = _blobs_of(project, "small")
    _delete(project, big_blobs[0])
    _damage(project, small_blobs[0])
    out = _cli(project, "fsck", "--json")
    assert out.returncode == 5, out.stderr
    report = json.loads(out.stdout)
    kinds = {p["digest"]: (p["kind"], p["needed_by"]) for p in report["problems"]}
    assert kinds == {big_blobs[0]: ("missing", "data:/big@1"),
                     small_blobs[0]: ("corrupt", "data:/small@1")}
    assert report["remaining"] == 2 and not report["ok"]
    fixed = _cli(project, "fsck", "--repair")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "rebuilt from the working copy" in fixed.stdout
    quarantined = list((project.objects.root / "quarantine").iterdir())
    assert [q.name.split(".")[0] for q in quarantined] == [small_blobs[0]]
    assert check(project).ok
    (project.root / "big.bin").unlink()
    mloop.data.checkout("big@1")  # the bytes are whole again
    assert _cli(project, "fsck").returncode == 0


def test_repair_fetches_from_a_remote_what_no_file_holds(versioned, tmp_path):
    project, run_id = versioned
    artifact = mloop.get_run(run_id).artifacts[0].digest
    remote = tmp_path / "remote"
    add_remote(project, "origin", f"file://{remote}")
    mloop.data.push("origin")
    open_object_store(str(remote)).put_bytes(b"hello")  # the artifact is there too
    version, blobs = _blobs_of(project, "big")
    _delete(project, version.tree)  # the tree: what it lists is unknown until it is back
    for blob in blobs:
        _delete(project, blob)
    (project.root / "big.bin").unlink()  # and no file to rebuild from
    _delete(project, artifact)
    before = check(project)
    assert {p.digest for p in before.remaining} == {version.tree, artifact}
    result = mloop.fsck(repair=True)
    assert result.ok, [p.to_dict() for p in result.problems]
    repaired = {p.digest: p.repaired for p in result.problems}
    assert set(repaired) == {version.tree, artifact, *blobs}  # the tree's chunks: round 2
    assert all(how == "fetched from remote origin" for how in repaired.values())
    assert mloop.read_artifact(f"runs:/{run_id}/notes.txt") == b"hello"


def test_what_nothing_can_restore_remains_and_is_named(versioned):
    project, run_id = versioned
    artifact = mloop.get_run(run_id).artifacts[0].digest
    _delete(project, artifact)
    result = mloop.fsck(repair=True)
    assert not result.ok
    [problem] = result.remaining
    assert (problem.kind, problem.needed_by) == ("missing", f"runs:/{run_id}/notes.txt")
    out = _cli(project, "fsck", "--repair")
    assert out.returncode == 5 and "1 problem remains" in out.stderr


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_re_adding_an_unchanged_file_restores_its_lost_blobs(versioned, how):
    project, _ = versioned
    version, blobs = _blobs_of(project, "big")
    for blob in blobs:
        if how == "deleted":
            _delete(project, blob)
        else:
            _damage(project, blob, truncate=True)
    again = mloop.data.add(project.root / "big.bin")
    assert again.version == version.version  # the same version, made whole: no new one
    assert check(project).ok
    _, small = _blobs_of(project, "small")
    _delete(project, small[0])
    assert mloop.data.add(project.root / "small").version == 1
    assert check(project).ok
