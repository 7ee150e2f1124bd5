"""The datasets repositories' contract (datasets, versions, tags, stat cache, stored
remotes, blob references), through the Backend, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from mloop.errors import ConflictError, DatasetNotFoundError, NotFoundError
from mloop.project import Project
from mloop.repositories import backend as backend_of
from mloop.repositories.datasets import NewVersion, StatEntry, StoredRemote, VersionKind
from tests.server.live import sql_side

TREE_A, TREE_B, TREE_C = ("a" * 64, "b" * 64, "c" * 64)


def _new(tree: str, **extra: object) -> NewVersion:
    return NewVersion(tree=tree, kind=VersionKind.FILE, source_path="data/t.csv", size=3,
                      files=1, **extra)  # type: ignore[arg-type]


def test_versions_are_numbered_and_read_back(project: Project) -> None:
    datasets = backend_of(project).datasets
    assert datasets.add_version("t", _new(TREE_A, message="one", user="ann")) == 1
    assert datasets.add_version("t", _new(TREE_B, rows=2, stats={"rows": 2})) == 2
    first = datasets.find("t", 1)
    assert (first.ref, first.tree, first.kind, first.message, first.user) == (
        "t@1", TREE_A, "file", "one", "ann")
    assert first.created_at > 0 and first.stats is None and first.tags == []
    latest = datasets.find("t")
    assert (latest.version, latest.rows, latest.stats) == (2, 2, {"rows": 2})
    assert [v.version for v in datasets.versions("t")] == [2, 1]
    datasets.add_version("u", NewVersion(tree=TREE_C, kind=VersionKind.FOLDER,
                                         source_path="data/imgs", size=0, files=0))
    assert [v.ref for v in datasets.latest_versions()] == ["t@2", "u@1"]
    assert datasets.source_paths() == ["data/imgs", "data/t.csv"]
    assert sorted(datasets.trees()) == [("t", 1, TREE_A), ("t", 2, TREE_B), ("u", 1, TREE_C)]


def test_unknown_datasets_versions_and_tags_are_not_found(project: Project) -> None:
    datasets = backend_of(project).datasets
    with pytest.raises(DatasetNotFoundError, match="No dataset named 'nope'"):
        datasets.find("nope")
    with pytest.raises(DatasetNotFoundError, match="No dataset named 'nope'"):
        datasets.versions("nope")
    with pytest.raises(DatasetNotFoundError):
        datasets.tag("nope", 1, "golden")
    datasets.add_version("t", _new(TREE_A))
    with pytest.raises(DatasetNotFoundError, match="no version 7"):
        datasets.find("t", 7)
    with pytest.raises(NotFoundError, match="no version or tag 'golden'"):
        datasets.find("t", "golden")
    assert datasets.latest_versions()[0].ref == "t@1"


def test_tags_point_at_one_version_and_move(project: Project) -> None:
    datasets = backend_of(project).datasets
    datasets.add_version("t", _new(TREE_A))
    datasets.add_version("t", _new(TREE_B))
    datasets.tag("t", 1, "golden")
    assert datasets.find("t", "golden").version == 1
    assert datasets.find("t", 1).tags == ["golden"]
    datasets.tag("t", 2, "golden")
    datasets.tag("t", 2, "best")
    assert datasets.find("t", "golden").version == 2
    assert [v.tags for v in datasets.versions("t")] == [["best", "golden"], []]


def test_a_recorded_number_is_kept_and_a_taken_one_conflicts(project: Project) -> None:
    datasets = backend_of(project).datasets
    datasets.record_version("t", 4, _new(TREE_A, message="from a clone", created_at=1000))
    got = datasets.find("t", 4)
    assert (got.tree, got.message, got.created_at) == (TREE_A, "from a clone", 1000)
    with pytest.raises(ConflictError, match="t@4"):
        datasets.record_version("t", 4, _new(TREE_B))
    assert datasets.find("t", 4).tree == TREE_A
    assert datasets.add_version("t", _new(TREE_B)) == 5  # the next after the highest


def test_validation_and_summaries_are_stored_with_versions(project: Project) -> None:
    datasets = backend_of(project).datasets
    datasets.add_version("t", _new(TREE_A))
    datasets.add_version("copy", _new(TREE_A))
    datasets.add_version("t", _new(TREE_B, stats={"rows": 9, "profile": TREE_C}))
    datasets.set_validation("t", 1, {"passed": True})
    assert datasets.find("t", 1).validation == {"passed": True}
    datasets.fill_summary(TREE_A, {"rows": 3})
    datasets.fill_summary(TREE_B, {"rows": 1})  # has a summary already: kept
    assert (datasets.find("t", 1).rows, datasets.find("copy").stats) == (3, {"rows": 3})
    assert datasets.find("t", 2).stats == {"rows": 9, "profile": TREE_C}
    assert datasets.profiles() == [("t", 2, TREE_C)]


def test_the_stat_cache_saves_replaces_and_forgets(project: Project) -> None:
    cache = backend_of(project).stat_cache
    assert cache.lookup(["a.csv"]) == {}
    cache.save([StatEntry("a.csv", 3, 10, 7, TREE_A), StatEntry("b/c.txt", 1, 11, 8, TREE_B)])
    cache.save([StatEntry("a.csv", 4, 12, 7, TREE_C)])
    assert cache.lookup(["a.csv", "zz"]) == {"a.csv": StatEntry("a.csv", 4, 12, 7, TREE_C)}
    many = [f"f{i}" for i in range(2500)] + ["b/c.txt"]  # a big folder: the whole-cache read
    assert list(cache.lookup(many)) == ["b/c.txt"]
    cache.forget(["a.csv", "never"])
    cache.forget([])
    assert set(cache.lookup(["a.csv", "b/c.txt"])) == {"b/c.txt"}


def test_stored_remotes_are_read_repointed_and_deleted(project: Project) -> None:
    from mloop.store.schema import remotes

    with sql_side(project).store.write() as conn:
        conn.execute(remotes.insert(), [{"name": "old", "url": "s3://b/x", "created_at": 0},
                                        {"name": "a", "url": "file:///srv", "created_at": 0}])
    stored = backend_of(project).stored_remotes
    assert stored.all() == [StoredRemote("a", "file:///srv"), StoredRemote("old", "s3://b/x")]
    stored.set_url("old", "s3://other", "s3://c")  # not the URL it holds: unchanged
    stored.set_url("old", "s3://b/x", "s3://b/y")
    assert stored.all()[1] == StoredRemote("old", "s3://b/y")
    assert stored.delete("old") is True
    assert stored.delete("old") is False
    assert [r.name for r in stored.all()] == ["a"]


def test_blob_references_name_their_owners(project: Project) -> None:
    import mloop

    assert backend_of(project).blob_references.rows().blobs == []
    with mloop.start_run() as run:
        mloop.log_text("hello", "note.txt")
    found = backend_of(project).blob_references.rows()
    owners = [owner for _, owner in found.blobs]  # and the git diff, run from a dirty tree
    assert f"runs:/{run.id}/note.txt" in owners
    assert all(o.startswith(f"runs:/{run.id}") for o in owners)
    assert found.outputs == []
