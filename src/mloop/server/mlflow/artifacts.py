"""MLflow's artifact proxy over mloop's run artifacts.

``mlflow-artifacts:/<experiment>/<run>/artifacts/<path>`` is a run's artifact ``<path>``:
uploads are stored in mloop's object store and listed with the run exactly as
``mloop.log_artifact`` does (so ``mloop runs show`` lists them), downloads are verified
against their digest. Logged models (mlflow 3.x) keep their files in a folder of their
source run, under the same scheme. A path that would leave the run's root (``..``, an
absolute path, a NUL byte) is refused with 400 ``INVALID_PARAMETER_VALUE``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from mloop.core.identity import Identity
from mloop.core.paths import safe_relpath
from mloop.errors import ArtifactNotFoundError, RunNotFoundError
from mloop.repositories import backend
from mloop.repositories.runs import ArtifactInfo
from mloop.server.mlflow import convert, mlmodel, wire
from mloop.server.mlflow.routing import Args, Routes
from mloop.server.mlflow.tracking import run_id_of
from mloop.tracking import artifacts as _artifacts
from mloop.tracking import records

if TYPE_CHECKING:
    from mloop.project import Project

PROXY = "/api/2.0/mlflow-artifacts/artifacts"
CHUNK = 1 << 20


def split(project: Project, raw: str) -> tuple[str, str]:
    """(run id, path in the run) of a proxy path ``<exp>/<run>/artifacts[/<path>]``;
    a path that would leave the run's root is refused."""
    if "\x00" in raw or raw.startswith("/") or "\\" in raw:
        raise wire.invalid(f"Invalid artifact path {raw!r}: use a relative path.")
    parts = raw.split("/", 3)
    if any(p in ("..", ".") for p in raw.split("/")):
        raise wire.invalid(f"Invalid artifact path {raw!r}: '..' is not allowed.")
    if len(parts) < 3 or parts[2] != "artifacts":
        raise wire.not_found(f"No artifact at {raw!r}: paths are "
                             "<experiment_id>/<run_id>/artifacts/<path>.")
    run_id = parts[1]
    rel = safe_relpath(parts[3], allow_empty=True) if len(parts) == 4 else ""
    if len(run_id) != 32:
        raise RunNotFoundError(f"Run with id={run_id} not found.")
    # The experiment part is the client's copy of the run's: the run id alone names the
    # files (one look-up per file of an upload, not a whole run's record).
    return records.resolve_run_id(project, run_id), rel


def children(project: Project, run_id: str, rel: str) -> list[dict[str, Any]]:
    """The entries directly under ``rel`` (a file: none), paths relative to ``rel``, with
    the ``MLmodel`` generated for an mloop model folder."""
    found = _artifacts.list_artifacts(project, run_id, rel)
    if len(found) == 1 and found[0].path == rel and rel:
        return []
    entries: dict[str, dict[str, Any]] = {}
    for info in found:
        sub = info.path[len(rel) + 1:] if rel else info.path
        head, _, rest = sub.partition("/")
        if rest:
            entries.setdefault(head, {"path": head, "is_dir": True})
        else:
            entries[head] = {"path": head, "is_dir": False, "file_size": info.size}
    if "mloop-model.json" in entries and mlmodel.MLMODEL not in entries:
        text = mlmodel.generated(project, run_id, rel)
        if text is not None:
            entries[mlmodel.MLMODEL] = {"path": mlmodel.MLMODEL, "is_dir": False,
                                        "file_size": len(text)}
    return [entries[k] for k in sorted(entries)]


def _file(project: Project, run_id: str, rel: str) -> ArtifactInfo | bytes:
    """The stored artifact at ``rel``, or the bytes of a generated ``MLmodel``."""
    found = [a for a in _artifacts.list_artifacts(project, run_id, rel) if a.path == rel]
    if found:
        return found[0]
    if PurePosixPath(rel).name == mlmodel.MLMODEL:
        text = mlmodel.generated(project, run_id, str(PurePosixPath(rel).parent).strip("."))
        if text is not None:
            return text
    raise ArtifactNotFoundError(f"No artifact {rel!r} in run {run_id}.")


def _download(project: Project, raw: str) -> Response:
    run_id, rel = split(project, raw)
    if not rel:
        raise wire.invalid("Name a file to download, not the run's artifact root.")
    found = _file(project, run_id, rel)
    if isinstance(found, bytes):
        return Response(found, media_type="text/plain")
    fd, tmp = tempfile.mkstemp(prefix="mloop-mlflow-")
    os.close(fd)
    try:
        project.objects.get_file(found.digest, tmp)  # verified against its digest
    except BaseException:
        os.unlink(tmp)
        raise
    return FileResponse(tmp, media_type="application/octet-stream",
                        background=BackgroundTask(os.unlink, tmp))


def _store(project: Project, raw: str, tmp: str, size: int) -> None:
    run_id, rel = split(project, raw)
    if not rel:
        raise wire.invalid("Name the artifact file to upload.")
    info = ArtifactInfo(rel, size, project.objects.put_file(tmp))
    backend(project).runs.record_artifacts(run_id, [info])


def register(routes: Routes) -> None:
    """Add the artifact proxy and ``artifacts/list``."""
    project = routes.project

    async def upload(request: Request, identity: Identity) -> Response:
        raw = request.path_params["path"]
        await run_in_threadpool(split, project, raw)  # refuse before reading the body
        fd, tmp = tempfile.mkstemp(prefix="mloop-mlflow-up-")
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    out.write(chunk)
            await run_in_threadpool(_store, project, raw, tmp, size)
        finally:
            os.unlink(tmp)
        return JSONResponse({})

    async def download(request: Request, identity: Identity) -> Response:
        return await run_in_threadpool(_download, project, request.path_params["path"])

    routes.raw("PUT", PROXY + "/{path:path}", "writer", upload)
    routes.raw("GET", PROXY + "/{path:path}", "reader", download)

    @routes.get(PROXY)
    def list_proxy(args: Args) -> Args:
        raw = (wire.text(args, "path", required=False) or "").strip("/")
        if raw.count("/") < 2:  # an experiment or the root: MLflow lists nothing useful
            return {}
        run_id, rel = split(project, raw)
        return wire.clean({"files": children(project, run_id, rel)})

    @routes.get("/api/2.0/mlflow/artifacts/list")
    def list_run(args: Args) -> Args:
        run_id = run_id_of(project, args)
        rel = safe_relpath(wire.text(args, "path", required=False) or "", allow_empty=True)
        run = backend(project).runs.get(run_id)
        files = [dict(e, path=f"{rel}/{e['path']}" if rel else e["path"])
                 for e in children(project, run_id, rel)]
        return wire.clean({"root_uri": convert.artifact_root(run.experiment_id, run_id),
                           "files": files})
