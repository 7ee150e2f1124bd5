"""A large table's summary and drift profile: deferred by ``data add``, computed on first
use (API and CLI), kept, and equal to what an eager add computes."""

import json
import threading

import numpy as np
import pandas as pd
import pytest

import mloop
from mloop.data import catalog, summary
from mloop.data import stats as _stats
from mloop.project import Project
from tests.cli.test_cli import run_cli


def _frame(n, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": np.arange(n), "age": rng.integers(18, 90, n),
                         "plan": rng.choice(["free", "pro", "team"], n),
                         "spend": rng.normal(50, 10, n).round(4)})


@pytest.fixture
def lazy(monkeypatch):
    """Every table counts as large: its add defers the summary."""
    monkeypatch.setattr(summary, "EAGER_BYTES", -1)


@pytest.fixture
def csv(project):
    path = project.root / "data" / "train.csv"
    path.parent.mkdir()
    _frame(20_000).to_csv(path, index=False)
    return path


def _eager_stats(tmp_path, source, name="train.csv"):
    """What an add with the summary on its critical path stores, in a project of its own."""
    other = Project.init(tmp_path / "eager")
    try:
        copy = other.root / "data" / name
        copy.parent.mkdir()
        copy.write_bytes(source.read_bytes())
        with pytest.MonkeyPatch.context() as m:
            m.setattr(summary, "EAGER_BYTES", 1 << 40)
            version = mloop.data.add(copy, name="train", project=other)
        profile = json.loads(other.objects.get_bytes(version.stats["profile"]))
        return version.rows, version.stats, profile
    finally:
        other.close()


def test_deferred_then_computed_on_first_use_and_equal_to_eager(project, csv, lazy, tmp_path):
    v1 = mloop.data.add(csv, name="train")
    assert v1.stats is None and v1.rows is None and summary.deferred(v1)
    assert mloop.data.get("train@1").stats is None  # a plain get computes nothing
    done = mloop.data.get("train@1", summarize=True)
    rows, stats, profile = _eager_stats(tmp_path, csv)
    assert (done.rows, done.stats) == (rows, stats) == (20_000, stats)
    assert json.loads(project.objects.get_bytes(done.stats["profile"])) == profile
    stored = catalog.get(project, "train@1")  # kept in the version's row
    assert (stored.rows, stored.stats) == (rows, stats) and not summary.deferred(stored)


def test_computed_once_then_read(project, csv, lazy, monkeypatch):
    mloop.data.add(csv, name="train")
    calls = []
    real = _stats.summarize_path
    monkeypatch.setattr(_stats, "summarize_path", lambda p: calls.append(p) or real(p))
    first = mloop.data.get("train", summarize=True)
    second = mloop.data.get("train", summarize=True)
    assert len(calls) == 1 and first.stats == second.stats


def test_same_content_shares_the_summary(project, csv, lazy, monkeypatch):
    mloop.data.add(csv, name="train")
    mloop.data.rollback("train", 1)  # version 2: the same tree
    mloop.data.get("train@2", summarize=True)
    monkeypatch.setattr(_stats, "summarize_path", lambda p: pytest.fail("computed again"))
    assert mloop.data.get("train@1", summarize=True).rows == 20_000


def test_from_the_store_when_the_working_file_changed(project, csv, lazy, tmp_path):
    mloop.data.add(csv, name="train")
    original = csv.read_bytes()
    _frame(50, seed=3).to_csv(csv, index=False)  # the working copy moved on
    done = mloop.data.get("train@1", summarize=True)
    assert done.rows == 20_000  # the version's bytes, restored and verified, not the file's
    (tmp_path / "orig.csv").write_bytes(original)
    assert done.stats == _eager_stats(tmp_path, tmp_path / "orig.csv")[1]
    csv.unlink()
    assert not list((project.root / ".mloop").glob("summary-*"))  # the copy is removed


def test_sampled_large_table_equal_to_eager(project, csv, lazy, monkeypatch, tmp_path):
    monkeypatch.setattr(_stats, "FULL_PROFILE_BYTES", 1000)  # the sampled path of big files
    monkeypatch.setattr(_stats, "SAMPLE_BLOCK_BYTES", 4096)
    mloop.data.add(csv, name="train")
    done = mloop.data.get("train", summarize=True)
    assert done.stats["sample_rows"] < done.rows == 20_000
    assert done.stats == _eager_stats(tmp_path, csv)[1]


def test_not_a_table_stores_nothing(project, lazy):
    path = project.root / "notes.csv"
    path.write_bytes(b"a,b\n1,2,3,4\n\x00\x01")
    mloop.data.add(path, name="notes")
    assert mloop.data.get("notes", summarize=True).stats is None


def test_concurrent_first_readers_agree(project, csv, lazy):
    mloop.data.add(csv, name="train")
    version = catalog.get(project, "train@1")
    out, errors = [], []

    def read():
        try:
            out.append(summary.ensure(project, version))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len({json.dumps(v.stats, sort_keys=True) for v in out}) == 1
    assert catalog.get(project, "train@1").stats == out[0].stats


def test_cli_show_and_drift_reference_compute_it(sqlite_project, lazy):
    root = sqlite_project.root
    _frame(5000).to_csv(root / "train.csv", index=False)
    _frame(3000, seed=1).to_csv(root / "current.csv", index=False)
    mloop.data.add(root / "train.csv", name="train")
    drift = run_cli("monitor", "drift", "-r", "train@1", "-c", "current.csv", "--json",
                    cwd=root)
    report = json.loads(drift.stdout)
    assert report["reference"]["profile"] is True and report["reference"]["rows"] == 5000
    stored = catalog.get(sqlite_project, "train@1")
    assert stored.rows == 5000 and stored.stats["profile"]  # kept by the drift check
    shown = json.loads(run_cli("data", "show", "train@1", "--json", cwd=root).stdout)
    assert shown["rows"] == 5000 and shown["stats"]["columns"]["plan"]["distinct"] == 3


def test_cli_show_computes_it_first(sqlite_project, lazy):
    root = sqlite_project.root
    _frame(1000).to_csv(root / "train.csv", index=False)
    added = run_cli("data", "add", "train.csv", cwd=root)
    assert "rows" in added.stdout  # small: summarised by the add itself (no monkeypatch)
    mloop.data.add(root / "train.csv", name="other")  # in-process: deferred
    assert catalog.get(sqlite_project, "other").stats is None
    shown = run_cli("data", "show", "other@1", cwd=root)
    assert "Columns" in shown.stdout and "spend" in shown.stdout
    assert catalog.get(sqlite_project, "other").rows == 1000
