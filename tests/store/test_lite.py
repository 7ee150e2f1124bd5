"""Plain-SQL access without SQLAlchemy: same answers as the Store, same safety."""

import sqlite3
import subprocess
import sys

import pytest

import mloop
from mloop.data import catalog
from mloop.errors import SchemaTooNewError
from mloop.project import Project
from mloop.store.lite import in_list, lite, sqlite_path


@pytest.fixture
def versioned(sqlite_project):
    path = sqlite_project.root / "t.csv"
    path.write_text("a,b\n1,x\n2,y\n")
    mloop.data.add(path, name="t", message="first")
    path.write_text("a,b\n1,x\n2,y\n3,z\n")
    mloop.data.add(path, message="second")
    mloop.data.tag("t@1", "golden")
    return sqlite_project


def test_fresh_project_reads_through_sqlite3_with_the_same_answers(versioned):
    fresh = Project(versioned.root)
    try:
        for ref in ("t", "t@1", "t@golden", "data:/t@2"):
            assert catalog.get(fresh, ref) == catalog.get(versioned, ref)
        assert catalog.log(fresh, "t") == catalog.log(versioned, "t")
        assert catalog.list_datasets(fresh) == catalog.list_datasets(versioned)
        assert mloop.data.status(project=fresh) == mloop.data.status(project=versioned)
        assert lite(fresh)._conn is not None  # it did use sqlite3 …
        assert "store" not in fresh.__dict__  # … and never opened the SQLAlchemy store
    finally:
        fresh.close()


def test_write_transactions_commit_or_roll_back(versioned):
    sql = lite(Project(versioned.root))
    with pytest.raises(RuntimeError), sql.write() as q:
        q.many("DELETE FROM stat_cache WHERE path = :path", [{"path": "t.csv"}])
        raise RuntimeError("boom")
    with sql.read() as q:
        assert q.all("SELECT path FROM stat_cache") == [{"path": "t.csv"}]
    with sql.write() as q:
        q.many("DELETE FROM stat_cache WHERE path = :path", [{"path": "t.csv"}])
    with sql.read() as q:
        assert q.all("SELECT path FROM stat_cache") == []
    sql.close()


def test_a_store_at_another_schema_goes_through_the_store(versioned):
    db = sqlite_path(versioned.settings.store_uri)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    fresh = Project(versioned.root)
    with pytest.raises(SchemaTooNewError):
        catalog.get(fresh, "t")
    assert lite(fresh)._conn is None


def test_in_list_and_sqlite_path():
    assert in_list("p", ["a", "b"]) == (":p0, :p1", {"p0": "a", "p1": "b"})
    assert in_list("p", []) == ("NULL", {})
    assert sqlite_path("sqlite:////x/m.db").as_posix() == "/x/m.db"
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql+psycopg://u@h/db") is None


def test_status_and_checkout_do_not_import_sqlalchemy(versioned):
    code = ("import sys, mloop\n"
            "mloop.data.status(); mloop.data.checkout('t@1'); mloop.data.log('t')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=versioned.root, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
    assert (versioned.root / "t.csv").read_text() == "a,b\n1,x\n2,y\n"
