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
