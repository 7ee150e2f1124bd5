"""A PostgreSQL store that cannot be reached or refuses the URI is one clear error.

Unreachable (connection refused, unknown host) → ServiceUnavailableError, exit 69: the
server may come back. Reached but refused (unknown role or database, bad password,
bad option) → ConfigError, exit 2: the URI must change. Both name the store with its
password hidden.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit, urlunsplit

import pytest

import mloop
from mloop.errors import ConfigError, ServiceUnavailableError
from mloop.store.engine import Store
from tests.cli.test_cli import run_cli


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with(url: str, *, user: str | None = None, port: int | None = None,
          host: str | None = None, db: str | None = None, query: str = "") -> str:
    parts = urlsplit(url)
    name = user if user is not None else (parts.username or "")
    where = f"{host or parts.hostname}:{port or parts.port}"
    netloc = f"{name}@{where}" if name else where
    return urlunsplit((parts.scheme, netloc, f"/{db}" if db else parts.path, query, ""))


def test_refused_connection_is_unavailable():
    url = f"postgresql+psycopg://u:hunter2@127.0.0.1:{_closed_port()}/db"
    with pytest.raises(ServiceUnavailableError) as info:
        Store(url)
    message = str(info.value)
    assert "cannot be reached" in message and "hunter2" not in message
    assert "u:***@127.0.0.1" in message


def test_unknown_host_is_unavailable():
    with pytest.raises(ServiceUnavailableError, match="cannot be reached"):
        Store("postgresql+psycopg://u:pw@host.invalid:5432/db")


@pytest.mark.parametrize("change", [
    {"user": "no_such_role_mloop:hunter2"}, {"db": "no_such_database_mloop"},
    {"query": "sslmode=bogus"},
], ids=["role", "database", "option"])
def test_server_refusing_the_uri_is_a_config_error(pg_database, change):
    url = _with(pg_database, **change)
    with pytest.raises(ConfigError) as info:
        Store(url)
    message = str(info.value)
    assert "refused the connection" in message and "Fix the role" in message
    assert "hunter2" not in message


def test_cli_exit_codes_for_the_store(tmp_path, pg_database, monkeypatch):
    mloop.init(tmp_path / "p")
    for url, code, says in [
        (f"postgresql+psycopg://u:hunter2@127.0.0.1:{_closed_port()}/db", 69, "cannot be reached"),
        (_with(pg_database, user="no_such_role_mloop:hunter2"), 2, "refused the connection"),
    ]:
        monkeypatch.setenv("MLOOP_STORE_URI", url)
        out = run_cli("runs", "list", cwd=tmp_path / "p", check=False)
        assert out.returncode == code, out.stderr
        assert says in out.stderr and "hunter2" not in out.stderr
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_statement_errors_are_not_mistaken_for_connection_errors(pg_uri):
    """A constraint or data error on a live connection stays what it is."""
    import sqlalchemy as sa

    store = Store(pg_uri)
    try:
        with pytest.raises(sa.exc.ProgrammingError), store.read() as conn:
            conn.execute(sa.text("SELECT * FROM no_such_table_mloop"))
    finally:
        store.close()
