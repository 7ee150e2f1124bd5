"""An object server for tests: the object routes of a project on a real socket of
127.0.0.1 (uvicorn in a thread), stopped and restarted at will (same port, same project)."""

from __future__ import annotations

import socket
from typing import Any, Self

from fastapi import FastAPI

from mloop.project import Project
from mloop.server.app import Authorize, no_auth
from mloop.server.objects import ObjectLimits, make_router
from tests.server.live import LiveServer


def free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AppServer:
    """An app on a real socket; ``url`` is the server's root. Subclasses build the app."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.live: LiveServer | None = None

    def app(self) -> FastAPI:
        return FastAPI()

    def start(self) -> Self:
        self.live = LiveServer(self.app(), port=self.port)
        return self

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class ObjectServer(AppServer):
    """``make_router(project)`` alone in an app: stop it and start another on the same
    project and port to play a restart of the server."""

    def __init__(self, project: Project, authorize: Authorize = no_auth,
                 limits: ObjectLimits | None = None, port: int | None = None) -> None:
        super().__init__(port)
        self.project, self.authorize, self.limits = project, authorize, limits

    def app(self) -> FastAPI:
        app = FastAPI()
        app.include_router(make_router(self.project, self.authorize, limits=self.limits))
        return app
