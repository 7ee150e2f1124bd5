"""Data versioning through the Python API (SQLite and PostgreSQL metadata)."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mloop
from mloop import lineage
from mloop.errors import ConfigError, InvalidInputError, NotFoundError


def _frame(n, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": np.arange(n), "age": rng.integers(18, 90, n),
                         "plan": rng.choice(["free", "pro", "team"], n),
                         "spend": rng.normal(50, 10, n).round(4)})


def _blob_bytes(project):
    return sum(f.stat().st_size for f in (project.root / ".mloop" / "objects").rglob("*")
               if f.is_file())


@pytest.fixture
def csv(project):
    path = project.root / "data" / "train.csv"
    path.parent.mkdir()
    _frame(100_000).to_csv(path, index=False)
    return path


def test_add_versions_log_and_dedup(project, csv):
    v1 = mloop.data.add(csv, name="train", message="May export")
    assert (v1.name, v1.version, v1.rows, v1.kind) == ("train", 1, 100_000, "file")
    assert v1.stats["columns"]["age"]["min"] >= 18
    assert mloop.data.add(csv).version == 1  # unchanged content: no new version
    before = _blob_bytes(project)
    size = csv.stat().st_size
    _frame(100_000).pipe(lambda d: pd.concat([d, _frame(1000, seed=1).assign(
        id=lambda x: x.id + 10**6)])).to_csv(csv, index=False)
    v2 = mloop.data.add(csv, message="June export")  # name found from the tracked path
    growth = _blob_bytes(project) - before
    changed = csv.stat().st_size - size
    assert v2.ref == "train@2"
    assert growth <= 2 * changed + 64 * 1024, (growth, changed)
    log = mloop.data.log("train")
    assert [(v.version, v.message) for v in log] == [(2, "June export"), (1, "May export")]
    assert log[0].user and log[0].command


def test_mid_file_edit_stores_only_nearby_chunks(project, csv):
    mloop.data.add(csv, name="train")
    before = _blob_bytes(project)
    data = bytearray(csv.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 100] = b"9" * 100
    csv.write_bytes(bytes(data))
    mloop.data.add(csv)
    assert _blob_bytes(project) - before < 400 * 1024  # a few chunks, not the whole file


def test_checkout_restores_exact_bytes_and_edits_do_not_touch_the_store(project, csv):
    original = csv.read_bytes()
    mloop.data.add(csv, name="train")
    csv.write_bytes(original + b"1,2,free,3\n")
    mloop.data.add(csv)
    result = mloop.data.checkout("train@1")
    assert csv.read_bytes() == original and result.written == ["train.csv"]
    # editing the checked-out copy must not change what the store holds for v1
    csv.write_bytes(b"scribble")
    mloop.data.checkout("train@1", project.root / "copy.csv")
    assert (project.root / "copy.csv").read_bytes() == original
    again = mloop.data.checkout("train@1", project.root / "copy.csv")
    assert again.written == [] and again.unchanged == 1


def test_folder_versions_and_pointer_files(project):
    folder = project.root / "imgs"
    (folder / "sub").mkdir(parents=True)
    for i in range(30):
        (folder / ("sub" if i % 2 else ".") / f"{i}.bin").write_bytes(os.urandom(3000))
    v = mloop.data.add(folder)
    assert (v.name, v.kind, v.files) == ("imgs", "folder", 30)
    pointer = json.loads((project.root / "imgs.mloop").read_text())
    assert pointer["dataset"] == "imgs" and pointer["version"] == 1
    assert "/imgs" in (project.root / ".gitignore").read_text().splitlines()
    (folder / "0.bin").unlink()
    (folder / "sub" / "1.bin").write_bytes(b"changed")
    assert mloop.data.status()[0].state == "modified"
    mloop.data.checkout(str(project.root / "imgs.mloop"))  # as after `git checkout`
    assert mloop.data.status()[0].state == "clean"


def test_status_does_not_rehash_unchanged_files(project, csv, monkeypatch):
    mloop.data.add(csv, name="train")
    from mloop.data import workspace as co

    calls = []
    monkeypatch.setattr(co, "hash_file", lambda p: calls.append(p) or "x")
    assert mloop.data.status()[0].state == "clean"
    assert calls == []


def test_tags_rollback_and_refs(project, csv):
    mloop.data.add(csv, name="train")
    csv.write_text("id,age\n1,2\n")
    mloop.data.add(csv)
    mloop.data.tag("train@1", "golden")
    assert mloop.data.get("train@golden").version == 1
    assert mloop.data.get("data:/train@2").version == 2
    v3 = mloop.data.rollback("train", 1)
    assert v3.version == 3 and v3.tree == mloop.data.get("train@1").tree
    assert [v.version for v in mloop.data.log("train")] == [3, 2, 1]
    with pytest.raises(InvalidInputError, match="version number"):
        mloop.data.tag("train@1", "7")
    with pytest.raises(NotFoundError, match="mloop data log train"):
        mloop.data.get("train@9")
    with pytest.raises(NotFoundError, match="mloop data add"):
        mloop.data.get("nope")


def test_diff_files_schema_rows(project, csv):
    mloop.data.add(csv, name="train")
    df = pd.read_csv(csv)
    df.loc[5, "age"] = 99
    df = pd.concat([df, df.tail(3).assign(id=lambda d: d.id + 10**6)]).drop(columns="spend")
    df.to_csv(csv, index=False)
    mloop.data.add(csv)
    by_key = mloop.data.diff("train@1", "train@2", key="id").table
    assert by_key["rows"] == {"old": 100_000, "new": 100_003, "added": 3, "removed": 0,
                              "changed": 1, "matched_by": "id"}
    assert by_key["schema"]["removed"] == ["spend"]
    by_hash = mloop.data.diff("train@1", "train@2").table["rows"]
    # rows compare on the columns both versions have: 3 new rows, 1 edited (= -1 +1)
    assert (by_hash["added"], by_hash["removed"]) == (4, 1)


def test_load_records_lineage_inside_a_run(project, csv):
    mloop.data.add(csv, name="train")
    with mloop.start_run(experiment="x") as run:
        frame = mloop.data.load("train@1")
        mloop.log_input("train@1")  # idempotent
    assert frame.shape == (100_000, 4)
    into, out = lineage.neighbours(project, "data:/train@1")
    assert into == [] and [(e.dst, e.relation) for e in out] == [(f"runs:/{run.id}", "input")]


def test_add_inside_a_run_records_output(project, csv):
    with mloop.start_run() as run:
        v = mloop.data.add(csv, name="train")
    into, _ = lineage.neighbours(project, v.uri)
    assert [(e.src, e.relation) for e in into] == [(f"runs:/{run.id}", "output")]


def test_bad_paths(project, tmp_path):
    with pytest.raises(InvalidInputError, match="no such file"):
        mloop.data.add(project.root / "missing.csv")
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n")
    with pytest.raises(InvalidInputError, match="outside the project"):
        mloop.data.add(outside)


def test_validate(project, csv, tmp_path):
    mloop.data.add(csv, name="train")
    schema = tmp_path / "schema.yaml"
    schema.write_text("columns:\n  id: {type: int, unique: true}\n"
                      "  age: {type: int, min: 18, max: 89}\n"
                      "  plan: {type: str, allowed: [free, pro]}\n  spend: {max_null_share: 0}\n")
    result = mloop.data.validate("train@1", schema)
    failed = {c.check for c in result.checks if not c.passed}
    assert failed == {"allowed"} and not result.passed
    assert mloop.data.get("train@1").validation["passed"] is False
    schema.write_text("columns:\n  age: {type: integer}\n")
    with pytest.raises(ConfigError, match=r"columns\.age\.type: expected one of 'int'"):
        mloop.data.validate("train@1", schema)
    schema.write_text("columns: [age]\n")
    with pytest.raises(ConfigError, match="columns: expected a mapping"):
        mloop.data.validate("train@1", schema)


def test_push_pull_to_a_folder_remote(project, csv, tmp_path):
    v = mloop.data.add(csv, name="train")
    from mloop.data.remotes import add_remote

    add_remote(project, "origin", f"file://{tmp_path / 'remote'}")
    first = mloop.data.push()
    assert first.sent == first.blobs > 1
    assert mloop.data.push().sent == 0  # only missing blobs travel
    # a fresh project sharing the metadata store pulls the bytes back
    for digest in list(project.objects.iter_digests()):
        project.objects.delete(digest)
    with pytest.raises(mloop.MloopError):
        mloop.data.checkout("train@1", project.root / "x.csv")
    pulled = mloop.data.pull("origin", ["train@1"])
    assert pulled.sent == first.sent
    mloop.data.checkout(v.ref, project.root / "x.csv")
    assert (project.root / "x.csv").read_bytes() == csv.read_bytes()


def test_gc_keeps_what_versions_need(project, csv):
    mloop.data.add(csv, name="train")
    orphan = project.objects.put_bytes(b"nobody needs me")
    old = time_ago = 10_000
    path = project.objects.path(orphan)
    os.utime(path, (path.stat().st_atime - time_ago, path.stat().st_mtime - old))
    result = mloop.data.gc()
    assert result.deleted == 1 and not project.objects.exists(orphan)
    mloop.data.checkout("train@1", project.root / "again.csv")
    assert (project.root / "again.csv").read_bytes() == csv.read_bytes()


def test_gc_spares_recent_blobs(project):
    fresh = project.objects.put_bytes(b"an add in progress wrote me")
    assert mloop.data.gc().deleted == 0 and project.objects.exists(fresh)


def test_empty_file_and_unparseable_csv(project):
    empty = project.root / "empty.csv"
    empty.write_bytes(b"")
    v = mloop.data.add(empty)
    assert v.size == 0 and v.rows is None
    mloop.data.checkout(v.ref, project.root / "e2.csv")
    assert (project.root / "e2.csv").read_bytes() == b""
    Path(project.root / "e2.csv").unlink()


def test_checkout_without_ref_follows_the_pointers(project, csv):
    mloop.data.add(csv, name="train")
    pointer_v1 = (project.root / "data" / "train.csv.mloop").read_text()
    original = csv.read_bytes()
    csv.write_bytes(original + b"1,2,free,3\n")
    mloop.data.add(csv)
    # as after `git checkout <older commit>`: the pointer is back to v1, the data is not
    (project.root / "data" / "train.csv.mloop").write_text(pointer_v1)
    results = mloop.data.checkout()
    assert [r.version.ref for r in results] == ["train@1"]
    assert csv.read_bytes() == original


def test_memory_remote_round_trip(project, csv):
    import uuid

    from mloop.data.remotes import add_remote

    mloop.data.add(csv, name="train")
    add_remote(project, "mem", f"memory://bucket-{uuid.uuid4().hex}")
    pushed = mloop.data.push("mem")
    assert pushed.sent > 0 and mloop.data.push("mem").sent == 0


def test_checkout_elsewhere_makes_an_untracked_copy(project, csv, tmp_path):
    mloop.data.add(csv, name="train")
    outside = tmp_path / "elsewhere" / "copy.csv"
    mloop.data.checkout("train@1", outside)
    assert outside.read_bytes() == csv.read_bytes()
    mloop.data.checkout("train@1", project.root / "copy.csv")
    assert not (project.root / "copy.csv.mloop").exists()  # only the tracked path has one


def test_full_durability_flushes_new_chunks(project, csv, monkeypatch):
    from mloop.objects import LocalObjectStore
    from mloop.project import Project

    synced = []
    monkeypatch.setattr(LocalObjectStore, "sync", lambda self: synced.append(self))  # noqa: PLW0108
    durable = Project(project.root, store_uri=project.settings.store_uri,
                      sqlite_synchronous="full")
    mloop.data.add(csv, name="train", project=durable)
    assert len(synced) == 1
    other = csv.with_name("other.csv")
    other.write_text("x,y\n1,2\n")
    mloop.data.add(other, name="other")  # default durability: new chunks, no flush
    assert len(synced) == 1
    durable.close()


def test_concurrent_adds_get_distinct_version_numbers(project):
    import threading

    folder = project.root / "d"
    folder.mkdir()
    paths = []
    for i in range(4):
        path = folder / f"part{i}.csv"
        path.write_text(f"x\n{i}\n")
        paths.append(path)
    errors = []

    def add(path):
        try:
            mloop.data.add(path, name="shared", project=project)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(v.version for v in mloop.data.log("shared")) == [1, 2, 3, 4]


def test_re_adding_unchanged_data_reads_nothing(project, csv, monkeypatch):
    v1 = mloop.data.add(csv, name="train")
    from mloop.data import versions

    def refuse(*args, **kwargs):
        raise AssertionError("unchanged data must not be re-read")

    monkeypatch.setattr(versions, "chunk_files", refuse)
    assert mloop.data.add(csv).version == v1.version


def test_small_files_are_packed_and_unchanged_ones_keep_their_place(project):
    folder = project.root / "many"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(500):
        (folder / f"{i:04d}.bin").write_bytes(rng.bytes(1000 + i))
    (folder / "dup-a.bin").write_bytes(b"same bytes" * 50)
    (folder / "dup-b.bin").write_bytes(b"same bytes" * 50)
    (folder / "empty.bin").write_bytes(b"")
    before = set(project.objects.iter_digests())
    mloop.data.add(folder)
    new_blobs = set(project.objects.iter_digests()) - before
    assert len(new_blobs) <= 3  # one pack and the tree, not 503 blobs
    (folder / "0007.bin").write_bytes(b"edited")
    before = set(project.objects.iter_digests())
    mloop.data.add(folder)
    grown = set(project.objects.iter_digests()) - before
    sizes = sorted(project.objects.size(d) for d in grown)
    assert len(sizes) == 2 and sizes[0] == len(b"edited")  # a pack of the edit + the tree
    for version in (1, 2):
        target = project.root / f"out{version}"
        mloop.data.checkout(f"many@{version}", target)
        for f in folder.iterdir():
            if version == 2 or f.name != "0007.bin":
                assert (target / f.name).read_bytes() == f.read_bytes()


def test_trees_are_compressed_and_plain_json_trees_still_read():
    from mloop.data.model import decode_tree, dumps, encode_tree

    tree = {"kind": "folder", "files": [{"path": f"f{i}", "size": i, "digest": "ab" * 32,
                                         "chunks": [["cd" * 32, i]]} for i in range(500)]}
    packed = encode_tree(tree)
    assert len(packed) < len(dumps(tree)) / 5
    assert decode_tree(packed) == tree
    assert decode_tree(dumps(tree).encode()) == tree
