"""A real uvicorn server on 127.0.0.1 (a random port, in a thread) over the MLflow router."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI

from mloop.project import Project
from mloop.server.app import Authorize, no_auth
from mloop.server.mlflow import make_router


@contextlib.contextmanager
def serve(project: Project, authorize: Authorize = no_auth,
          audit: Any = None) -> Iterator[str]:
    """The server's base URL, for the ``with`` block; stopped after it."""
    app = FastAPI()
    app.include_router(make_router(project, authorize, audit))
    # host and port 0 rather than a socket of ours: uvicorn's own listening socket gives
    # connections without Nagle's delay (a socket passed in costs ~40 ms a request here)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
