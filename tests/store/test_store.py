"""The store contract, run on SQLite and PostgreSQL alike."""

import threading

import pytest
import sqlalchemy as sa

from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.store import Store
from mloop.store.schema import experiments


@pytest.fixture
def store(tmp_path, backend):
    s = Store(backend or f"sqlite:///{tmp_path / 'm.db'}")
    yield s
    s.close()


def _exp(name):
    return {"id": new_id(), "name": name, "created_at": now_ms()}


def test_write_commits_and_read_sees_it(store):
    with store.write() as conn:
        conn.execute(experiments.insert().values(**_exp("a")))
    with store.read() as conn:
        assert conn.execute(sa.select(experiments.c.name)).scalars().all() == ["a"]


def test_exception_rolls_back(store):
    with pytest.raises(RuntimeError), store.write() as conn:
        conn.execute(experiments.insert().values(**_exp("b")))
        raise RuntimeError("boom")
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(experiments)).scalar() == 0


def test_upsert_helpers(store):
    with store.write() as conn:
        conn.execute(store.insert(experiments).values(**_exp("c")).on_conflict_do_nothing())
        conn.execute(store.insert(experiments).values(**_exp("c")).on_conflict_do_nothing(
            index_elements=["name"]))
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(experiments)).scalar() == 1


def test_concurrent_writers_all_land(store):
    errors = []

    def work(i):
        try:
            for j in range(20):
                with store.write() as conn:
                    conn.execute(experiments.insert().values(**_exp(f"t{i}-{j}")))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(experiments)).scalar() == 80


def test_sqlite_pragmas(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'x.db'}", sqlite_synchronous="full", busy_timeout_ms=1234)
    with s.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    s.close()


def test_unsupported_url_is_config_error(tmp_path):
    from mloop.errors import ConfigError

    with pytest.raises(ConfigError, match="Unsupported"):
        Store("mysql://x")


@pytest.mark.postgres
@pytest.mark.parametrize("uri", [
    "postgresql+psycopg://postgres:S3CR3T-pw@127.0.0.1:1/test",  # connection refused
    "postgresql+psycopg://no_such_role:S3CR3T-pw@127.0.0.1:5432/test",  # unknown role
    "postgresql+psycopg://u:S3C@R3T-pw@127.0.0.1:5432/test",  # a raw '@' in the password
    "postgresql+nodriver://u:S3CR3T-pw@h/db",  # no such driver
])
def test_a_store_uri_password_never_reaches_an_error(tmp_path, uri, pg_database):
    """Through the real CLI, with and without MLOOP_DEBUG's traceback."""
    import os
    import subprocess
    import sys

    from mloop.project import Project

    Project.init(tmp_path).close()
    for debug in ("0", "1"):
        env = {**os.environ, "MLOOP_STORE_URI": uri, "MLOOP_PROJECT": str(tmp_path),
               "MLOOP_DEBUG": debug}
        out = subprocess.run([sys.executable, "-m", "mloop", "runs", "list"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode != 0
        text = out.stdout + out.stderr
        assert "S3CR3T" not in text and "R3T-pw" not in text, text
        assert "Error" in out.stderr


def test_a_raw_at_sign_in_the_password_is_refused_before_connecting():
    from mloop.errors import ConfigError

    with pytest.raises(ConfigError, match="percent-encode") as err:
        Store("postgresql+psycopg://u:S3C@R3T@127.0.0.1:1/test")
    assert "R3T" not in err.value.message
