"""A real uvicorn server on 127.0.0.1 (a random port) in a thread, for tests."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any


class LiveServer:
    """Serve ``app`` until :meth:`stop`; ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        import uvicorn

        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn exited before it started"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.005)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_SERVED: dict[str, Any] = {}


def serve_project(client: Any, served: Any) -> None:
    """Remember that ``client`` (a project whose store is a server) is served by ``served``."""
    _SERVED[str(client.root)] = served


def sql_side(project: Any) -> Any:
    """The project holding the SQL store behind ``project``: itself, or its server's."""
    return _SERVED.get(str(project.root), project) if project.remote else project
