"""Running ``mloop ui``: uvicorn on loopback over the local project."""

from __future__ import annotations

import threading
import webbrowser
from collections.abc import Callable
from typing import TYPE_CHECKING

from mloop.core.net import listen_socket
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
    sock = listen_socket(host, port)  # TCP_NODELAY: no 40 ms wait on two-part pages
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/ui/"
    echo(f"mloop ui on {url} (project {project.root}); Ctrl-C stops it")
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    config = uvicorn.Config(standalone(project), log_level="warning", access_log=False,
                            timeout_keep_alive=30)
    uvicorn.Server(config).run(sockets=[sock])
