"""Running the team server: its configuration, the app it serves, uvicorn.

``mloop server`` resolves a :class:`ServerConfig` and calls :func:`run`. With several
workers uvicorn imports :func:`app_from_env` in each process, which reads the same
configuration from ``MLOOP_SERVER_CONFIG`` (no secrets in it: tokens live in the store).
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.core.redact import get_logger, redact
from mloop.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mloop.project import Project

log = get_logger("mloop.server")
CONFIG_ENV = "MLOOP_SERVER_CONFIG"


@dataclass(frozen=True)
class ServerConfig:
    """Everything a server process needs to build its app."""

    root: str  # the server's project folder (its config, secrets, upload parts)
    store_uri: str | None = None
    objects_uri: str | None = None
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    insecure_no_auth: bool = False
    allowed_hosts: tuple[str, ...] = ()
    tls_cert: str | None = None
    tls_key: str | None = None

    def overrides(self) -> dict[str, Any]:
        found = {}
        if self.store_uri:
            found["store_uri"] = self.store_uri
        if self.objects_uri:
            found["objects_uri"] = self.objects_uri
        return found

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        data = json.loads(text)
        data["allowed_hosts"] = tuple(data.get("allowed_hosts") or ())
        return cls(**data)

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address to bind) only accepts this machine's connections."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check(config: ServerConfig) -> None:
    """Refuse a configuration that would expose the store (raises :class:`ConfigError`)."""
    if config.insecure_no_auth and not is_loopback(config.host):
        log.warning("mloop server: --insecure-no-auth on %s: ANYONE who reaches port %d "
                    "can read and change every run, model and deployment.", config.host,
                    config.port)
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ConfigError("Give both --tls-cert and --tls-key (or neither).")
    for path in (config.tls_cert, config.tls_key):
        if path and not Path(path).is_file():
            raise ConfigError(f"No file {path}: --tls-cert and --tls-key name PEM files.")


def open_project(config: ServerConfig) -> Project:
    """The server's project (created when missing), with the store and objects given."""
    from mloop.project import Project, is_server_uri

    if is_server_uri(config.store_uri):
        raise ConfigError("The server's --store is a database (sqlite:///… or "
                          "postgresql+psycopg://…), not another mloop server.")
    return Project.init(config.root, **config.overrides())


def build_app(config: ServerConfig, project: Project | None = None) -> FastAPI:
    """The whole server application for ``config``."""
    from mloop.server import auth, login, objects
    from mloop.server.app import create_app
    from mloop.server.mlflow import make_router as mlflow_router

    project = project or open_project(config)
    guard = auth.TokenAuth(project, host=config.host, allowed_hosts=config.allowed_hosts,
                           insecure_no_auth=config.insecure_no_auth)
    from mloop.server.ui.app import make_ui, mount
    from mloop.server.ui.guard import ServerGuard

    routers = [mlflow_router(project, guard, guard.record),  # the busiest routes first
               objects.make_router(project, guard), login.make_router(project, guard)]
    app = create_app(project, authorize=guard, audit=guard.record, routers=routers,
                     closing=[guard.close, project.close])
    mount(app, make_ui(project, ServerGuard(guard), audit_to=guard.record))
    return app


def app_from_env() -> FastAPI:
    """The app of one worker process (``uvicorn --factory``), from :data:`CONFIG_ENV`."""
    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise ConfigError(f"{CONFIG_ENV} is not set: start the server with `mloop server`.")
    return build_app(ServerConfig.from_json(text))


def run(config: ServerConfig) -> None:
    """Serve until Ctrl-C or SIGTERM."""
    import uvicorn

    check(config)
    project = open_project(config)  # created and migrated once, before any worker
    log.info("mloop server: store %s, objects %s", redact(project.settings.store_uri),
             redact(project.settings.objects_uri))
    ssl = {"ssl_certfile": config.tls_cert, "ssl_keyfile": config.tls_key} \
        if config.tls_cert else {}
    common: dict[str, Any] = {"host": config.host, "port": config.port,
                              "log_level": "warning", "access_log": False,
                              "timeout_keep_alive": 30, **ssl}
    if config.workers > 1:
        project.close()
        os.environ[CONFIG_ENV] = config.to_json()
        uvicorn.run("mloop.server.main:app_from_env", factory=True, workers=config.workers,
                    **common)
    else:
        uvicorn.run(build_app(config, project), **common)
