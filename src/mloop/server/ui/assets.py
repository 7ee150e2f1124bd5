"""The UI's static files: read once, gzipped once, served from memory with cache headers.

Their URLs carry a hash of their content (``/ui/static/<hash>/app.js``), so a browser may
keep them for a year: a new release or an edited file gets a new URL.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response

STATIC = Path(__file__).parent / "static"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    media_type: str


@dataclass(frozen=True)
class Assets:
    version: str
    files: dict[str, Asset]

    def url(self, prefix: str, name: str) -> str:
        return f"{prefix}/static/{self.version}/{name}"

    def respond(self, request: Request, name: str) -> Response:
        asset = self.files.get(name)
        if asset is None:
            return Response("Not found", status_code=404, media_type="text/plain")
        headers = {"cache-control": "public, max-age=31536000, immutable",
                   "x-content-type-options": "nosniff", "vary": "accept-encoding"}
        if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            headers["content-encoding"] = "gzip"
            return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)


@cache
def load() -> Assets:
    """Every file under ``static/`` (licenses and READMEs excepted), read once."""
    files: dict[str, Asset] = {}
    digest = hashlib.blake2b(digest_size=6)
    for path in sorted(STATIC.rglob("*")):
        if not path.is_file() or path.suffix in ("", ".md", ".LICENSE") or \
                path.name.endswith(".LICENSE"):
            continue
        name = path.relative_to(STATIC).as_posix()
        body = path.read_bytes()
        digest.update(name.encode() + b"\0" + body)
        kind = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or \
            "application/octet-stream"
        packed = gzip.compress(body, 9, mtime=0) if path.suffix in (".js", ".css", ".svg") \
            else None
        files[name] = Asset(body, packed, kind)
    return Assets(digest.hexdigest(), files)
