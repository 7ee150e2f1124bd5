import pytest
import sqlalchemy as sa

from mloop.errors import SchemaError, SchemaTooNewError
from mloop.store import Store, metadata, migrate


def test_revision_list_matches_scripts():
    assert migrate.alembic_heads() == [migrate.HEAD]


def test_migrations_build_exactly_the_live_schema(tmp_path, backend):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = Store(backend or f"sqlite:///{tmp_path / 'm.db'}")
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    store.close()
    assert diff == []


def test_reopen_is_cheap_and_keeps_revision(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    Store(url).close()
    s = Store(url)
    with s.read() as conn:
        assert migrate.current_revision(conn) == migrate.HEAD
    s.close()


def test_store_from_newer_mloop_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    s = Store(url)
    with s.write() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    s.close()
    with pytest.raises(SchemaTooNewError, match="newer mloop"):
        Store(url)


def test_no_upgrade_mode_reports_old_schema(tmp_path):
    with pytest.raises(SchemaError, match="mloop init"):
        Store(f"sqlite:///{tmp_path / 'm.db'}", upgrade=False)


def test_parallel_first_open_builds_schema_once(tmp_path):
    import threading

    url = f"sqlite:///{tmp_path / 'm.db'}"
    errors = []

    def open_it():
        try:
            Store(url).close()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.fixture
def empty_store_url(tmp_path, backend):
    """A URL of a store with no tables at all (a fresh database on PostgreSQL)."""
    if not backend:
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    import uuid

    import psycopg

    from tests.conftest import _pg_admin_url

    name = f"mloop_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_pg_admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{backend.rpartition('/')[0]}/{name}"
    with psycopg.connect(_pg_admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_0009_adds_owners_to_a_store_with_runs_and_leaves_old_runs_running(empty_store_url):
    from alembic import command
    from alembic.config import Config

    from mloop.store.schema import runs
    from mloop.tracking.model import RunStatus

    engine = sa.create_engine(empty_store_url)
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(migrate.MIGRATIONS_DIR))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0008_automation")
        conn.execute(sa.text("INSERT INTO experiments (id, name, created_at) "
                             "VALUES ('e' , 'old', 1)"))
        conn.execute(sa.text("INSERT INTO runs (id, experiment_id, name, status, start_time) "
                             "VALUES ('r', 'e', 'from-0008', 'RUNNING', 1)"))
        conn.execute(sa.text("INSERT INTO pipeline_runs (id, pipeline, status, executor, "
                             "params, inputs, started_at) VALUES ('p', 'flow', 'running', "
                             "'local', '{}', '{}', 1)"))
    engine.dispose()
    store = Store(empty_store_url)  # upgrades to HEAD
    try:
        with store.read() as conn:
            assert migrate.current_revision(conn) == migrate.HEAD
            row = conn.execute(sa.select(runs).where(runs.c.id == "r")).one()
        assert (row.owner_host, row.owner_pid, row.heartbeat_at) == (None, None, None)
        assert row.status == str(RunStatus.RUNNING)  # no owner recorded: nobody can tell
        indexes = {i["name"] for i in sa.inspect(store.engine).get_indexes("runs")}
        assert "ix_runs_running" in indexes
    finally:
        store.close()
