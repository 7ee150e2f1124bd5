"""A real uvicorn server on 127.0.0.1 (a random port, in a thread) over the MLflow router."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from mloop.project import Project
from mloop.server.app import Authorize, no_auth
from mloop.server.mlflow import make_router


@contextlib.contextmanager
def serve(project: Project, authorize: Authorize = no_auth) -> Iterator[str]:
    """The server's base URL, for the ``with`` block; stopped after it."""
    app = FastAPI()
    app.include_router(make_router(project, authorize))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
