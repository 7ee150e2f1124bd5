"""A run's artifacts in the browser: previews on the run's page and the raw route.

Every byte comes through the project's artifact API (:func:`mloop.tracking.artifacts.
read_artifact`: the path made safe, the bytes verified against their digest). The raw
route answers with ``X-Content-Type-Options: nosniff`` and a sandboxing
Content-Security-Policy, so an artifact is never a page of this origin: an HTML report
runs no script even opened on its own, and only images and an HTML report shown in its
frame come ``inline`` — everything else is an attachment.
"""

from __future__ import annotations

import csv
import io
import json
import mimetypes
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from mloop.core.paths import safe_relpath
from mloop.errors import ArtifactNotFoundError, InvalidInputError, MalformedRequestError
from mloop.repositories.runs import ArtifactInfo
from mloop.server.ui.app import project_of
from mloop.tracking.artifacts import list_artifacts, read_artifact
from mloop.tracking.records import resolve_run_id

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.server.ui.render import Context

router = APIRouter()

PREVIEW_LIMIT = 2 * 1024 * 1024  # bytes: a larger artifact is not loaded into the page
SHOWN_TEXT = 100 * 1024  # characters of a text preview
CSV_ROWS = 50  # rows of a CSV preview
MAX_PREVIEWS = 20  # artifacts previewed on one page (the rest are listed)
IN_MEMORY = 64 * 1024 * 1024  # bytes: a larger download is verified into a temp file
RAW_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"

IMAGE = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".bmp", ".avif"})
HTML = frozenset({".html", ".htm"})
JSON = frozenset({".json", ".geojson"})
TABLE = frozenset({".csv", ".tsv"})
TEXT = frozenset({".txt", ".log", ".md", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".py",
                  ".sql", ".sh", ".diff", ".patch", ".xml", ".rst", ".jsonl", ".ndjson"})


def kind_of(path: str) -> str:
    """How an artifact is previewed: image, html, json, csv, text, or none."""
    suffix = PurePosixPath(path).suffix.lower()
    for kind, suffixes in (("image", IMAGE), ("html", HTML), ("json", JSON), ("csv", TABLE),
                           ("text", TEXT)):
        if suffix in suffixes:
            return kind
    return "none"


@dataclass
class Preview:
    """One artifact as the run's page shows it."""

    path: str
    size: int
    kind: str  # image, html, json, csv, text, none
    href: str  # the raw route (a download)
    frame: str = ""  # the raw route shown in a frame (HTML) or an image
    too_big: bool = False
    text: str = ""
    truncated: bool = False
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    problem: str = ""


def _text(data: bytes) -> tuple[str, bool]:
    text = data.decode("utf-8", "replace")
    return (text[:SHOWN_TEXT], True) if len(text) > SHOWN_TEXT else (text, False)


def _fill(preview: Preview, data: bytes) -> None:
    """The text, pretty JSON or first rows of ``data``, by the preview's kind."""
    if preview.kind == "json":
        try:
            pretty = json.dumps(json.loads(data), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            preview.problem = "Not valid JSON: shown as text."
            pretty = data.decode("utf-8", "replace")
        preview.text, preview.truncated = _text(pretty.encode())
    elif preview.kind == "csv":
        text = data.decode("utf-8-sig", "replace")
        dialect = "excel-tab" if preview.path.lower().endswith(".tsv") else "excel"
        reader = csv.reader(io.StringIO(text), dialect)
        try:
            preview.header = next(reader, [])
            for row in reader:
                if len(preview.rows) >= CSV_ROWS:
                    preview.truncated = True
                    break
                preview.rows.append(row)
        except csv.Error as exc:
            preview.problem = f"Not a readable CSV file ({exc})."
    else:
        preview.text, preview.truncated = _text(data)


def previews(ctx: Context, project: Project, run_id: str,
             artifacts: list[ArtifactInfo]) -> list[Preview]:
    """The artifacts of a run with what the page shows of each: at most
    :data:`MAX_PREVIEWS` previews, none of an artifact over :data:`PREVIEW_LIMIT`."""
    out: list[Preview] = []
    shown = 0
    for info in artifacts:
        kind = kind_of(info.path)
        raw = ctx.url("runs", run_id, "artifacts", "raw") + "/" + urllib.parse.quote(info.path)
        preview = Preview(info.path, info.size, kind, raw)
        if kind == "none" or shown >= MAX_PREVIEWS:
            preview.kind = "none"
        elif info.size > PREVIEW_LIMIT:
            preview.too_big = True
        else:
            shown += 1
            if kind == "image":
                preview.frame = raw + "?inline=1"
            elif kind == "html":
                preview.frame = raw + "?frame=1"
            else:
                _fill(preview, read_artifact(project, run_id, info.path))
        out.append(preview)
    return out


def _disposition(kind: str, path: str) -> str:
    name = PurePosixPath(path).name or "artifact"
    plain = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{urllib.parse.quote(name)}"


def _media_type(path: str, kind: str) -> str:
    if kind == "html":
        return "text/html; charset=utf-8"
    if kind in ("text", "csv", "json"):
        return "text/plain; charset=utf-8"  # shown as text even when opened in a tab
    if kind == "image":
        return mimetypes.guess_type(path)[0] or "application/octet-stream"
    return "application/octet-stream"


def _artifact(project: Project, run_id: str, path: str) -> ArtifactInfo:
    try:
        rel = safe_relpath(path)
    except InvalidInputError as exc:
        raise MalformedRequestError(f"{exc.message}") from None
    found = [a for a in list_artifacts(project, run_id, rel) if a.path == rel]
    if not found:
        raise ArtifactNotFoundError(f"Run {run_id[-12:]} has no artifact {rel!r}.")
    return found[0]


@router.get("/runs/{run_id}/artifacts/raw/{path:path}")
def raw_artifact(request: Request, run_id: str, path: str, inline: bool = False,
                 frame: bool = False) -> Response:
    """The verified bytes of one artifact; inline only for images (``inline=1``) and an
    HTML report in its sandboxed frame (``frame=1``)."""
    project = project_of(request)
    full_id = resolve_run_id(project, run_id)
    info = _artifact(project, full_id, path)
    kind = kind_of(info.path)
    shown = (inline and kind == "image") or (frame and kind == "html")
    headers = {"content-disposition": _disposition("inline" if shown else "attachment",
                                                   info.path),
               "content-security-policy": RAW_CSP, "x-content-type-options": "nosniff",
               "etag": f'"{info.digest}"', "cache-control": "private, no-cache"}
    if request.headers.get("if-none-match") == headers["etag"]:
        return Response(status_code=304, headers=headers)
    media = _media_type(info.path, kind)
    if info.size <= IN_MEMORY:
        return Response(read_artifact(project, full_id, info.path), media_type=media,
                        headers=headers)
    folder = tempfile.mkdtemp(prefix="mloop-ui-")
    target = Path(folder) / "artifact"
    try:
        project.objects.get_file(info.digest, target)  # verified as it is copied
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(target, media_type=media, headers=headers,
                        background=BackgroundTask(shutil.rmtree, folder, True))

