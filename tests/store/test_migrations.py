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
