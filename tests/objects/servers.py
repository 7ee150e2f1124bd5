"""An object server for tests: uvicorn in a thread on 127.0.0.1 serving the object routes
of a project, stopped and restarted at will (the same port, the same project)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

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


class ObjectServer:
    """``make_router(project)`` on a real socket; ``url`` is the server's root."""

    def __init__(self, project: Project, authorize: Authorize = no_auth,
                 limits: ObjectLimits | None = None, port: int | None = None) -> None:
        self.project, self.authorize, self.limits = project, authorize, limits
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> ObjectServer:
        app = FastAPI()
        app.include_router(make_router(self.project, self.authorize, limits=self.limits))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive(), "the object server did not start"
            assert time.monotonic() < deadline, "the object server did not start in time"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=20)
            self.server = self.thread = None

    def __enter__(self) -> ObjectServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
