"""The UI behind ``mloop server`` for role checks: browsers logged in with a token of a
given role (a session cookie and its CSRF token, as a person's browser has them)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from mloop.project import Project


@contextlib.contextmanager
def server_ui(root: Path) -> Iterator[Callable[[str], httpx.Client]]:
    """``mloop server`` over the project at ``root`` on 127.0.0.1; yields ``as_role(role)``,
    a client logged in with a token of that role (one token a role)."""
    from mloop.server import tokens
    from mloop.server.main import ServerConfig, build_app
    from tests.server.live import LiveServer

    project = Project.open(root)  # its own: the server closes it on the way out
    app = build_app(ServerConfig(root=str(root)), project)
    clients: dict[str, httpx.Client] = {}
    with LiveServer(app) as live:

        def as_role(role: str) -> httpx.Client:
            if role not in clients:
                token, _, _ = tokens.create(project, f"ui-test-{role}", role)
                client = httpx.Client(base_url=live.url, timeout=60)
                answer = client.post("/login", data={"token": token, "next": "/ui/"},
                                     follow_redirects=False)
                assert answer.status_code == 303, answer.text
                clients[role] = client
            return clients[role]

        try:
            yield as_role
        finally:
            for client in clients.values():
                client.close()
    asyncio.run(_shut_down(app))


async def _shut_down(app: object) -> None:
    """Start and stop the app's lifespan: its audit writer and project close, as
    ``mloop server`` closes them."""
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        pass
