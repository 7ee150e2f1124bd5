"""Listening sockets for mloop's own servers (the UI, the federation server)."""

from __future__ import annotations

import socket

from mloop.errors import ConfigError


def listen_socket(host: str, port: int, *, backlog: int = 512) -> socket.socket:
    """A TCP socket listening on ``host:port`` (0: any free port), or a ConfigError that
    says to choose another ``--port``.

    TCP_NODELAY is set on the listener because accepted connections inherit it (asyncio
    sets it only on sockets it opened itself): without it, a response written in two
    parts waits ~40 ms for the peer's delayed ACK (Nagle's algorithm).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"Cannot listen on {host}:{port} ({exc.strerror}); choose another "
                          "port with --port (0 picks a free one).") from exc
    return sock


__all__ = ["listen_socket"]
