"""An object server for tests: uvicorn in a thread on 127.0.0.1 serving the object routes
of a project, stopped and restarted at will (the same port, the same project)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Self

import uvicorn
from fastapi import FastAPI

from mloop.project import Project
from mloop.server.app import Authorize, no_auth
from mloop.server.objects import ObjectLimits, make_router


def free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AppServer:
    """An ASGI app on a real socket of 127.0.0.1; ``url`` is the server's root."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def app(self) -> FastAPI:
        return FastAPI()

    def start(self) -> Self:
        self.server = uvicorn.Server(uvicorn.Config(self.app(), host="127.0.0.1",
                                                    port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive(), "the server did not start"
            assert time.monotonic() < deadline, "the server did not start in time"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=20)
            self.server = self.thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class ObjectServer(AppServer):
    """``make_router(project)`` on a real socket: stop it and start another on the same
    project and port to play a restart."""

    def __init__(self, project: Project, authorize: Authorize = no_auth,
                 limits: ObjectLimits | None = None, port: int | None = None) -> None:
        super().__init__(port)
        self.project, self.authorize, self.limits = project, authorize, limits

    def app(self) -> FastAPI:
        app = FastAPI()
        app.include_router(make_router(self.project, self.authorize, limits=self.limits))
        return app
