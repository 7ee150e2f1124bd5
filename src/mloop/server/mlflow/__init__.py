"""The MLflow REST subset, so that the mlflow client works unchanged against ``mloop server``.

``mlflow.set_tracking_uri("http://host:5000")`` then a normal MLflow workflow logs into
mloop's own runs, artifacts and registry: what the mlflow client logs is what mloop's API
and CLI show, and the other way round. Served by :func:`make_router`:

* :mod:`~mloop.server.mlflow.tracking`: experiments, runs, params, metrics, tags, inputs,
  search and metric history (``/api/2.0/mlflow/...``);
* :mod:`~mloop.server.mlflow.models`: mlflow 3.x logged models, held as folders of runs;
* :mod:`~mloop.server.mlflow.registry`: registered models, versions, aliases, tags;
* :mod:`~mloop.server.mlflow.artifacts`: the artifact proxy
  (``/api/2.0/mlflow-artifacts/artifacts/...``);
* :mod:`~mloop.server.mlflow.mlmodel`: ``MLmodel`` folders and mloop manifests;
* :mod:`~mloop.server.mlflow.wire`: proto3 JSON and MLflow's error codes;
  :mod:`~mloop.server.mlflow.routing`: roles, arguments and errors of every route.

See docs/server-mlflow.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mloop.server.mlflow import artifacts, models, registry, tracking, wire
from mloop.server.mlflow.routing import Args, Routes

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.server.app import Authorize
    from mloop.server.rpc import Audit

__all__ = ["make_router"]


def make_router(project: Project, authorize: Authorize,
                audit: Audit | None = None) -> APIRouter:
    """Every MLflow route over ``project``; each checks its caller with ``authorize``
    (``reader`` to read, ``writer`` to log and register, ``approver`` for aliases), and
    ``audit(identity, action, target, status)`` records each write."""
    routes = Routes(project, authorize, audit)
    tracking.register(routes)
    models.register(routes)
    registry.register(routes)
    artifacts.register(routes)

    @routes.get("/api/3.0/mlflow/server-info")
    def server_info(args: Args) -> Args:  # the artifact client asks before big uploads
        return {"multipart_uploads_enabled": False, "multipart_downloads_enabled": False,
                "store_type": "mloop"}

    async def unknown(request: Request) -> Response:  # last: MLflow's form, not FastAPI's
        return wire.error_response(404, "ENDPOINT_NOT_FOUND",
                                   f"mloop server does not serve {request.method} "
                                   f"{request.url.path} (see docs/server-mlflow.md).")

    for prefix in ("/api/2.0/mlflow", "/api/2.0/mlflow-artifacts", "/api/3.0/mlflow"):
        routes.router.add_api_route(prefix + "/{rest:path}", unknown, include_in_schema=False,
                                    methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
    return routes.router
