"""The repositories' contract runs on every Backend: SQLite, PostgreSQL and the team
server's HTTP client (a real server on 127.0.0.1 over a SQLite project)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mloop.project import Project, set_project
from mloop.tracking import lifecycle
from tests.server.live import LiveServer, serve_project


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                        "http"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run each contract test on SQLite, PostgreSQL and over HTTP."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_uri"))
    return request.param if request.param == "http" else ""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server_only_backend(request: pytest.FixtureRequest) -> str:
    """The server's own tables (tokens, audit): on SQL stores only, never over HTTP."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_uri"))
    return ""


@pytest.fixture
def project(tmp_path: Path, backend: str) -> Iterator[Project]:
    if backend != "http":
        overrides = {"store_uri": backend} if backend else {}
        proj = Project.init(tmp_path / "proj", **overrides)
        set_project(proj)
        yield proj
        for run in reversed(lifecycle.active_runs()):
            run.end("KILLED")
        proj.close()
        return
    from mloop.server import objects
    from mloop.server.app import create_app, no_auth

    served = Project.init(tmp_path / "server")
    app = create_app(served, routers=[objects.make_router(served, no_auth)])
    with LiveServer(app) as server:
        proj = Project.init(tmp_path / "proj", store_uri=server.url)
        serve_project(proj, served)
        set_project(proj)
        yield proj
        for run in reversed(lifecycle.active_runs()):
            run.end("KILLED")
        proj.close()
    served.close()
