"""Shared fixtures: isolated projects, and real PostgreSQL databases when reachable.

PostgreSQL tests talk to a real server (``MLOOP_TEST_POSTGRES_URI``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``). Without one they skip with the
reason, unless ``MLOOP_REQUIRE_SERVICES=1`` (set by ``.ci/run``), where they fail.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

import mloop
from mloop.project import Project, set_project
from mloop.tracking import lifecycle

PG_URI = os.environ.get("MLOOP_TEST_POSTGRES_URI",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_SERVICES = os.environ.get("MLOOP_REQUIRE_SERVICES") == "1"

# Property tests check what holds, not how fast: on a shared 2-core CI machine one example
# can take seconds, and hypothesis's 200 ms deadline then fails a correct test as flaky.
settings.register_profile("mloop", deadline=None)
settings.load_profile("mloop")


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees another's project, experiment choice, env or active runs."""
    for key in list(os.environ):
        if key.startswith("MLOOP_") and key not in {"MLOOP_REQUIRE_SERVICES",
                                                   "MLOOP_TEST_POSTGRES_URI",
                                                   "MLOOP_UI_SCREENSHOTS"}:
            monkeypatch.delenv(key)
    # the user's own config, credentials and keys: a fresh, empty folder per test
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user-config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))  # the env-lock cache
    monkeypatch.setenv("MLOOP_QUIET", "1")
    monkeypatch.setenv("MLOOP_CAPTURE_PACKAGES", "0")  # fast; tests of capture turn it on
    # the CLI's entry point adds its stderr handler to the "mloop" logger for the process:
    # a later in-process command (CliRunner) would print log lines its test does not expect
    handlers = list(logging.getLogger("mloop").handlers)
    yield
    logging.getLogger("mloop").handlers[:] = handlers
    for run in reversed(lifecycle.active_runs()):
        run.end("KILLED")
    mloop.set_experiment(None)
    set_project(None)


def _pg_admin_url() -> str:
    return PG_URI.replace("postgresql+psycopg://", "postgresql://", 1)


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(_pg_admin_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_URI}: {exc}"
    return None


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session; dropped afterwards."""
    problem = _pg_available()
    if problem:
        if REQUIRE_SERVICES:
            pytest.fail(f"{problem} (MLOOP_REQUIRE_SERVICES=1)")
        pytest.skip(problem)
    import psycopg

    name = f"mloop_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_pg_admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = PG_URI.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(_pg_admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


TABLES = ("audit_log", "ended_sessions", "api_tokens",
          "prediction_segments", "deployment_traffic", "deployment_leases", "deployment_events",
          "deployment_revisions", "deployments", "automation_events", "automation_decisions",
          "automation_state",
          "pipeline_cache", "pipeline_steps", "pipeline_runs", "alerts", "feedback",
          "precomputed", "precompute_batches", "evaluations",
          "model_events", "model_tags", "model_aliases", "model_versions", "registered_models",
          "lineage_edges", "stat_cache",
          "remotes", "dataset_tags", "dataset_versions", "datasets", "artifacts",
          "latest_metrics", "metrics", "tags", "params", "runs", "environments", "experiments")


@pytest.fixture
def pg_uri(pg_database: str) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    import sqlalchemy as sa

    engine = sa.create_engine(pg_database)
    with engine.begin() as conn:
        existing = set(sa.inspect(conn).get_table_names())
        present = [t for t in TABLES if t in existing]
        if present:
            conn.execute(sa.text(f"TRUNCATE {', '.join(present)} CASCADE"))
    engine.dispose()
    return pg_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Run the test once on SQLite and once on PostgreSQL; yields the store URI or ''."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_uri"))
    return ""


@pytest.fixture
def project(tmp_path: Path, backend: str) -> Iterator[Project]:
    """A new project (on each backend), made current for the fluent API."""
    overrides = {"store_uri": backend} if backend else {}
    proj = Project.init(tmp_path / "proj", **overrides)
    set_project(proj)
    yield proj
    for run in reversed(lifecycle.active_runs()):
        run.end("KILLED")
    proj.close()


@pytest.fixture
def sqlite_project(tmp_path: Path) -> Iterator[Project]:
    """A new SQLite project, made current (for tests where the backend does not matter)."""
    proj = Project.init(tmp_path / "proj")
    set_project(proj)
    yield proj
    for run in reversed(lifecycle.active_runs()):
        run.end("KILLED")
    proj.close()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real, nearly full file system: a 1 MiB tmpfs (needs root and mount rights;
    skipped with the reason otherwise). Unmounted afterwards."""
    import shutil
    import subprocess

    where = tmp_path / "tiny-disk"
    where.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small file system")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 1 MiB tmpfs here ({done.stderr.strip() or 'no rights'})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


# -- S3 through a real S3-protocol server (moto's server mode) on 127.0.0.1 -----------------

S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "mloop-test", "AWS_SECRET_ACCESS_KEY": "mloop-test",
                  "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of an S3-protocol server (moto) on a free port of 127.0.0.1."""
    try:
        import s3fs  # noqa: F401 - the driver the stores use
        from moto import server as server_mod
    except ImportError as exc:  # the `test` extra brings both
        if REQUIRE_SERVICES:
            pytest.fail(f"S3 tests need moto[server] and s3fs: {exc}")
        pytest.skip(f"S3 tests need moto[server] and s3fs: {exc}")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<a new bucket>`` on :func:`s3_server`; dummy credentials and the endpoint
    (``AWS_ENDPOINT_URL``, which botocore honours) are set for this test only."""
    import s3fs

    for key, value in {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": s3_server}.items():
        monkeypatch.setenv(key, value)
    bucket = f"mloop-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(key=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                           secret=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                           endpoint_url=s3_server, skip_instance_cache=True)
    fs.mkdir(bucket)
    return f"s3://{bucket}"
