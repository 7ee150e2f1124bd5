"""The UI behind `mloop server`: the login page, sessions, roles, CSRF, bearer tokens."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mloop.project import Project
from mloop.server import tokens
from mloop.server.main import ServerConfig, build_app
from tests.server.live import LiveServer
from tests.server.ui.conftest import csrf_of


@pytest.fixture(scope="module")
def served(demo_root: Path, demo_project: Project) -> Iterator[tuple[str, dict[str, str]]]:
    made = {role: tokens.create(demo_project, f"ui-{role}", role)[0]
            for role in ("reader", "writer", "approver")}
    app = build_app(ServerConfig(root=str(demo_root)), demo_project)
    with LiveServer(app) as server:
        yield server.url, made


@contextlib.contextmanager
def _session(url: str, token: str) -> Iterator[httpx.Client]:
    """A browser-like client logged in with ``token`` (the session and CSRF cookies)."""
    with httpx.Client(base_url=url, timeout=60) as client:
        done = client.post("/login", data={"token": token, "next": "/ui/models"},
                           follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"] == "/ui/models"
        yield client


def test_a_browser_without_a_session_goes_to_the_login_page(served) -> None:
    url, _ = served
    with httpx.Client(base_url=url) as client:
        page = client.get("/ui/pipelines?x=a b", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login?next=%2Fui%2Fpipelines%3Fx%3D")
        assert client.get("/", follow_redirects=True).url.path == "/login"


def test_a_session_reads_and_names_its_role(served) -> None:
    url, made = served
    with _session(url, made["reader"]) as client:
        page = client.get("/ui/")
        assert page.status_code == 200
        assert "ui-reader · reader" in page.text
        assert 'action="/logout"' in page.text  # a logged-in browser can log out
        assert csrf_of(page.text) == client.cookies["mloop_csrf"]


def test_a_bearer_token_reads_the_ui_too(served) -> None:
    url, made = served
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {made['reader']}"}
                      ) as client:
        assert client.get("/ui/pipelines").status_code == 200
    with httpx.Client(base_url=url, headers={"authorization": "Bearer mloop_nope"}) as client:
        page = client.get("/ui/", follow_redirects=False)
        assert page.status_code == 401 and "text/html" in page.headers["content-type"]


def test_a_logged_out_session_is_refused(served) -> None:
    url, made = served
    with _session(url, made["writer"]) as client:
        csrf = csrf_of(client.get("/ui/").text)
        assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False
                           ).status_code == 303
        assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_the_local_guard_checks_csrf_and_host() -> None:
    from mloop.server.ui.guard import LocalGuard

    guard = LocalGuard()

    class FakeRequest:
        headers = {"host": "127.0.0.1:5000"}

    from mloop.errors import ForbiddenError

    with pytest.raises(ForbiddenError):
        guard.change(FakeRequest(), "approver", None)  # type: ignore[arg-type]
    with pytest.raises(ForbiddenError):
        guard.change(FakeRequest(), "approver", "wrong")  # type: ignore[arg-type]
    assert guard.change(FakeRequest(), "approver", guard.csrf(FakeRequest())  # type: ignore[arg-type]
                        ).role == "admin"
    FakeRequest.headers = {"host": "evil.example"}
    with pytest.raises(ForbiddenError):
        guard.change(FakeRequest(), "approver", guard.csrf(FakeRequest()))  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["/ui/runs/{run}/artifacts/raw/model/MLmodel",
                                  "/ui/runs/{run}/metrics/accuracy",
                                  "/ui/models/breast-cancer/1/card?format=md",
                                  "/ui/runs/{run}"])
def test_every_page_route_needs_a_session(served, demo_project: Project, path: str) -> None:
    from mloop.registry.models import get_version

    url, made = served
    run = get_version(demo_project, "breast-cancer/1").run_id
    target = path.format(run=run)
    with httpx.Client(base_url=url) as anonymous:
        answer = anonymous.get(target, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {made['reader']}"}
                      ) as reader:
        assert reader.get(target).status_code in (200, 404)  # readable with a token
