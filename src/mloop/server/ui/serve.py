"""Running ``mloop ui``: uvicorn on loopback over the local project."""

from __future__ import annotations

import socket
import threading
import webbrowser
from collections.abc import Callable
from typing import TYPE_CHECKING

from mloop.errors import ConfigError
from mloop.server.main import is_loopback

if TYPE_CHECKING:
    from mloop.project import Project


def serve(project: Project, *, host: str = "127.0.0.1", port: int = 5000,
          open_browser: bool = False, echo: Callable[[str], None] = print) -> None:
    """Serve the UI of ``project`` on ``host:port`` (loopback only) until Ctrl-C."""
    import uvicorn

    from mloop.server.ui.app import standalone

    if not is_loopback(host):
        raise ConfigError(f"mloop ui binds loopback only, not {host!r}: its user has every "
                          "role. Serve a team with `mloop server` (tokens, roles, /ui).")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this; asyncio sets it only on sockets it opened itself.
    # Without it a page sent in two writes (headers, gzipped body) waits ~40 ms for the
    # browser's delayed ACK (Nagle's algorithm).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"Cannot listen on {host}:{port} ({exc.strerror}); choose another "
                          "port with --port (0 picks a free one).") from exc
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/ui/"
    echo(f"mloop ui on {url} (project {project.root}); Ctrl-C stops it")
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    config = uvicorn.Config(standalone(project), log_level="warning", access_log=False,
                            timeout_keep_alive=30)
    uvicorn.Server(config).run(sockets=[sock])
