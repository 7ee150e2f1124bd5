"""The object store over HTTP: ``/api/v1/objects``.

What a client (:class:`mloop.objects.http.HttpObjectStore`) needs to use the server's
object store as its own, without credentials for the store behind it::

    POST   /missing            {"digests": [...]} -> {"missing": [...]}     reader
    HEAD   /{digest}           size in Content-Length and X-Mloop-Size       reader
    GET    /{digest}           the bytes, streamed; one ``Range`` honoured;     reader
                               ``?presign=1``: a 307 to a pre-signed URL when
                               the store can sign one (S3)
    PUT    /{digest}           the bytes: stored only when they hash to       writer
                               ``digest`` (else 422); 201 new, 200 already there
    POST   /uploads/{digest}   {"size": N} -> {"offset", "size", "stored"}     writer
    HEAD   /uploads/{digest}   Upload-Offset: bytes received so far            writer
    PATCH  /uploads/{digest}   Upload-Offset: N, the next bytes; the last part writer
                               verifies the whole and stores it
    DELETE /uploads/{digest}   abandon an upload                               writer
    GET    /records?folder=F   {"names": [...]}                                reader
    GET    /records/{name}     the record's bytes (404 when none)              reader
    PUT    /records/{name}     201 written, 200 + the bytes already there      writer
    GET    /                   every digest, one per line (garbage collection) admin
    DELETE /{digest}           remove a blob (garbage collection)              admin

A resumable upload keeps its bytes in ``<project>/.mloop/uploads/<digest>.part``,
fsynced at the end of each PATCH, so a restart of the server loses nothing it has
acknowledged: the client asks for the offset and sends the rest.

Every name is checked before it reaches a path: a digest is 64 lowercase hex digits, a
record name follows :func:`~mloop.objects.base.check_record_name`; anything else is a
4xx and touches no file.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from mloop.core.hashing import CHUNK, hash_file, new_hasher
from mloop.core.redact import get_logger
from mloop.errors import (
    ConflictError,
    InvalidInputError,
    MalformedRequestError,
    MloopError,
    NotFoundError,
    ObjectNotFoundError,
    PayloadTooLargeError,
)
from mloop.objects.base import ObjectStore, check_digest, check_record_name
from mloop.server.app import Authorize, error_response

if TYPE_CHECKING:
    from mloop.project import Project

log = get_logger("mloop.server.objects")

PREFIX = "/api/v1/objects"
UPLOADS = "uploads"  # the folder of resumable uploads in the project's .mloop/
OFFSET_HEADER = "Upload-Offset"
SIZE_HEADER = "X-Mloop-Size"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)\Z")


@dataclass(frozen=True)
class ObjectLimits:
    """What one request may carry (a larger body is a 413, a longer list a 422)."""

    max_missing: int = 10_000  # digests per POST /missing
    max_put: int = 64 << 20  # bytes of one PUT; larger blobs take a resumable upload
    max_part: int = 64 << 20  # bytes of one PATCH of a resumable upload
    max_blob: int = 1 << 40  # the size a resumable upload may declare (1 TiB)
    max_record: int = 16 << 20  # bytes of one named record
    presign_seconds: int = 300  # lifetime of a pre-signed download URL
    stale_upload_seconds: float = 7 * 86400  # an upload untouched this long is removed


class MissingRequest(BaseModel):
    digests: list[str] = Field(description="Digests the client wants to know about.")


class UploadRequest(BaseModel):
    size: int = Field(ge=0, description="The blob's size in bytes.")


_Body = TypeVar("_Body", bound=BaseModel)


class _Route(APIRoute):
    """Answers an :class:`MloopError` with its status and JSON body, so the router is
    complete wherever it is mounted."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except MloopError as exc:
                return error_response(exc)

        return route


def make_router(project: Project, authorize: Authorize, *,
                limits: ObjectLimits | None = None) -> APIRouter:
    """The object routes over ``project``'s object store, under ``/api/v1/objects``."""
    return _ObjectRoutes(project, authorize, limits or ObjectLimits()).router()


class _ObjectRoutes:
    def __init__(self, project: Project, authorize: Authorize, limits: ObjectLimits) -> None:
        self.project = project
        self.authorize = authorize
        self.limits = limits
        self.uploads = project.settings.project_dir / UPLOADS

    @property
    def store(self) -> ObjectStore:
        return self.project.objects

    def router(self) -> APIRouter:
        r = APIRouter(prefix=PREFIX, tags=["objects"], route_class=_Route)
        # fixed paths first: "/records" and "/missing" are not digests
        r.add_api_route("/missing", self.missing, methods=["POST"],
                        openapi_extra=_json_schema(MissingRequest))
        r.add_api_route("/", self.list_digests, methods=["GET"])
        r.add_api_route("/records", self.list_records, methods=["GET"])
        r.add_api_route("/records/{name:path}", self.get_record, methods=["GET"])
        r.add_api_route("/records/{name:path}", self.put_record, methods=["PUT"])
        r.add_api_route("/uploads/{digest}", self.start_upload, methods=["POST"],
                        openapi_extra=_json_schema(UploadRequest))
        r.add_api_route("/uploads/{digest}", self.upload_offset, methods=["HEAD"])
        r.add_api_route("/uploads/{digest}", self.append_upload, methods=["PATCH"])
        r.add_api_route("/uploads/{digest}", self.abandon_upload, methods=["DELETE"])
        r.add_api_route("/{digest}", self.head, methods=["HEAD"])
        r.add_api_route("/{digest}", self.download, methods=["GET"])
        r.add_api_route("/{digest}", self.upload, methods=["PUT"])
        r.add_api_route("/{digest}", self.delete, methods=["DELETE"])
        return r

    # -- reads ---------------------------------------------------------------------------

    async def missing(self, request: Request) -> dict[str, list[str]]:
        """Which of ``digests`` the server lacks (what a push must send)."""
        await run_in_threadpool(self.authorize, request, "reader")
        body = await _json_body(request, MissingRequest, self.limits.max_missing * 70 + 1024)
        if len(body.digests) > self.limits.max_missing:
            raise InvalidInputError(
                f"{len(body.digests)} digests in one request; at most "
                f"{self.limits.max_missing}: split the list into batches.")
        for d in body.digests:
            check_digest(d)
        return {"missing": sorted(await run_in_threadpool(self.store.missing, body.digests))}

    def head(self, request: Request, digest: str) -> Response:
        """The blob's size, or 404."""
        self.authorize(request, "reader")
        size = self.store.size(check_digest(digest))
        return Response(headers={"content-length": str(size), SIZE_HEADER: str(size),
                                 "accept-ranges": "bytes"})

    def download(self, request: Request, digest: str,
                 presign: bool = Query(False, description="Answer with a 307 to a "
                                       "pre-signed URL when the store can sign one.")
                 ) -> Response:
        """The blob's bytes, streamed (the client verifies them against the digest)."""
        self.authorize(request, "reader")
        store = self.store
        size = store.size(check_digest(digest))
        if presign:
            sign = getattr(store, "presign", None)
            url = sign(digest, self.limits.presign_seconds) if sign is not None else None
            if url is not None:
                return RedirectResponse(url, status_code=307)
        start, end = _byte_range(request.headers.get("range"), size)
        blob = _open_blob(store, digest)
        headers = {"content-length": str(end - start), SIZE_HEADER: str(size),
                   "accept-ranges": "bytes"}
        status = 200
        if (start, end) != (0, size):
            status = 206
            headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
        return StreamingResponse(_read_range(blob, start, end), status_code=status,
                                 headers=headers, media_type="application/octet-stream")

    def list_digests(self, request: Request) -> StreamingResponse:
        """Every stored digest, one per line (for garbage collection: admin only)."""
        self.authorize(request, "admin")
        lines = (f"{d}\n" for d in self.store.iter_digests())
        return StreamingResponse(lines, media_type="text/plain")

    def list_records(self, request: Request,
                     folder: str = Query(description="e.g. data/train")) -> dict[str, list[str]]:
        self.authorize(request, "reader")
        return {"names": self.store.list_records(check_record_name(folder))}

    def get_record(self, request: Request, name: str) -> Response:
        self.authorize(request, "reader")
        data = self.store.get_record(check_record_name(name))
        if data is None:
            raise ObjectNotFoundError(f"There is no record {name!r} in the server's object "
                                      "store.")
        return Response(data, media_type="application/octet-stream")

    # -- writes --------------------------------------------------------------------------

    async def upload(self, request: Request, digest: str) -> Response:
        """Store a blob sent whole; its bytes must hash to ``digest``."""
        await run_in_threadpool(self.authorize, request, "writer")
        check_digest(digest)
        _check_length(request, self.limits.max_put)
        tmp_dir = self.uploads / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir, suffix=".put")
        try:
            hasher = new_hasher()
            with os.fdopen(fd, "wb") as f:
                size = 0
                try:
                    async for chunk in request.stream():
                        size += len(chunk)
                        if size > self.limits.max_put:
                            raise _too_large(self.limits.max_put, "PUT")
                        hasher.update(chunk)
                        f.write(chunk)
                except ClientDisconnect:  # nobody is left to answer; nothing is stored
                    return Response(status_code=400)
            _check_hash(hasher.hexdigest(), digest)
            new = await run_in_threadpool(self._store_file, Path(tmp), digest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return JSONResponse({"digest": digest, "stored": True, "new": new},
                            status_code=201 if new else 200)

    def delete(self, request: Request, digest: str) -> Response:
        """Remove a blob (garbage collection: admin only); no error when absent."""
        self.authorize(request, "admin")
        self.store.delete(check_digest(digest))
        return Response(status_code=204)

    async def put_record(self, request: Request, name: str) -> Response:
        """Write a record once: 201 when written, 200 with the bytes already there."""
        await run_in_threadpool(self.authorize, request, "writer")
        check_record_name(name)
        data = await _read_body(request, self.limits.max_record, "record")
        found = await run_in_threadpool(self.store.put_record, name, data)
        if found is None:
            return Response(status_code=201)
        return Response(found, status_code=200, media_type="application/octet-stream")

    # -- resumable uploads ---------------------------------------------------------------

    async def start_upload(self, request: Request, digest: str) -> dict[str, Any]:
        """Begin (or look up) the upload of a large blob: where to continue from."""
        await run_in_threadpool(self.authorize, request, "writer")
        check_digest(digest)
        body = await _json_body(request, UploadRequest, 1024)
        return await run_in_threadpool(self._start_upload, digest, body.size)

    def _start_upload(self, digest: str, size: int) -> dict[str, Any]:
        if size > self.limits.max_blob:
            raise _too_large(self.limits.max_blob, "blob")
        if self.store.exists(digest):
            return {"digest": digest, "offset": size, "size": size, "stored": True}
        self._sweep_stale()
        part, meta = self._upload_paths(digest)
        part.parent.mkdir(parents=True, exist_ok=True)
        declared = _read_meta(meta)
        if declared is not None and declared != size and part.exists():
            raise ConflictError(
                f"An upload of {digest[:12]}… declared as {declared} bytes is in progress; "
                f"this one says {size}. DELETE /api/v1/objects/uploads/{digest} to "
                "abandon it.")
        if declared != size:
            _write_meta(meta, size)
        part.touch(exist_ok=True)
        return {"digest": digest, "offset": part.stat().st_size, "size": size,
                "stored": False}

    def upload_offset(self, request: Request, digest: str) -> Response:
        self.authorize(request, "writer")
        part, meta = self._upload_paths(check_digest(digest))
        size = _read_meta(meta)
        if size is None or not part.exists():
            raise NotFoundError(f"No upload of {digest[:12]}… is in progress here.")
        return Response(headers={OFFSET_HEADER: str(part.stat().st_size),
                                 SIZE_HEADER: str(size)})

    async def append_upload(self, request: Request, digest: str) -> Response:
        """Append the next bytes at ``Upload-Offset``; the last part stores the blob."""
        await run_in_threadpool(self.authorize, request, "writer")
        part, meta = self._upload_paths(check_digest(digest))
        size = _read_meta(meta)
        if size is None or not part.exists():
            raise NotFoundError(f"No upload of {digest[:12]}… is in progress here: start "
                                f"one with POST {PREFIX}/uploads/{digest}.")
        offset = _int_header(request, OFFSET_HEADER)
        _check_length(request, self.limits.max_part)
        try:  # never O_CREAT: an upload finished meanwhile must not come back empty
            fd = os.open(part, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            raise NotFoundError(f"No upload of {digest[:12]}… is in progress here (it "
                                "may have just finished): ask POST again.") from None
        with os.fdopen(fd, "ab") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConflictError(f"Another upload of {digest[:12]}… is sending a part "
                                    "now; try again when it is done.") from None
            have = f.seek(0, os.SEEK_END)
            if offset != have:
                return _offset_conflict(digest, have, size)
            received = 0
            try:
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > self.limits.max_part:
                        raise _too_large(self.limits.max_part, "PATCH")
                    if have + received > size:
                        raise InvalidInputError(
                            f"The upload of {digest[:12]}… was declared as {size} bytes; "
                            "this part goes beyond it.")
                    f.write(chunk)
            except ClientDisconnect:  # what arrived is kept: the client resumes there
                log.info("upload of %s… interrupted at byte %d", digest[:12], have + received)
                return Response(status_code=400)
            finally:  # the offset the server reports is on disk, whatever happens next
                f.flush()
                if have + received > size:
                    f.truncate(have)
                os.fsync(f.fileno())
            offset = have + received
            if offset < size:
                return JSONResponse({"digest": digest, "offset": offset, "size": size,
                                     "stored": False}, headers={OFFSET_HEADER: str(offset)})
            # still holding the lock: a second client's last part waits for this answer
            new = await run_in_threadpool(self._finish_upload, digest, part, meta)
        return JSONResponse({"digest": digest, "offset": size, "size": size, "stored": True,
                             "new": new}, status_code=201 if new else 200,
                            headers={OFFSET_HEADER: str(size)})

    def abandon_upload(self, request: Request, digest: str) -> Response:
        self.authorize(request, "writer")
        for path in self._upload_paths(check_digest(digest)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return Response(status_code=204)

    # -- internals -----------------------------------------------------------------------

    def _upload_paths(self, digest: str) -> tuple[Path, Path]:
        # digest is checked (64 hex digits): the paths stay in the uploads folder
        return self.uploads / f"{digest}.part", self.uploads / f"{digest}.json"

    def _finish_upload(self, digest: str, part: Path, meta: Path) -> bool:
        try:
            if self.store.exists(digest):  # another upload of the same blob got there first
                return False
            _check_hash(hash_file(part), digest)
            return self._store_file(part, digest)
        finally:
            for path in (part, meta):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def _store_file(self, path: Path, digest: str) -> bool:
        """Put a verified file into the store; whether it was new there."""
        if self.store.exists(digest):
            return False
        self.store.put_file(path)
        return True

    def _sweep_stale(self) -> None:
        """Remove uploads nobody has continued for ``stale_upload_seconds``."""
        cutoff = time.time() - self.limits.stale_upload_seconds
        for folder in (self.uploads, self.uploads / "tmp"):  # tmp: PUTs a crash cut off
            with contextlib.suppress(FileNotFoundError), os.scandir(folder) as it:
                for entry in it:
                    with contextlib.suppress(FileNotFoundError):
                        if entry.is_file() and entry.stat().st_mtime < cutoff:
                            os.unlink(entry.path)


def _open_blob(store: ObjectStore, digest: str) -> IO[bytes]:
    """A readable, seekable file of the blob: the store's own when it has one (local,
    fsspec), else its verified bytes in memory."""
    opener = getattr(store, "open_blob", None)
    if opener is not None:
        blob: IO[bytes] = opener(digest)
        return blob
    return io.BytesIO(store.get_bytes(digest))


def _read_range(blob: IO[bytes], start: int, end: int) -> Iterator[bytes]:
    try:
        blob.seek(start)
        left = end - start
        while left > 0:
            chunk = blob.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        blob.close()


def _byte_range(header: str | None, size: int) -> tuple[int, int]:
    """``[start, end)`` of a ``Range: bytes=a-b`` header (one range; suffix ``-n`` too)."""
    if not header:
        return 0, size
    match = _RANGE.match(header.strip())
    if match is None or match.groups() == ("", ""):
        raise _RangeError(f"Range {header!r} is not one 'bytes=START-END' range.", size)
    first, last = match.groups()
    if first == "":  # the last n bytes
        if int(last) == 0:
            raise _RangeError(f"Range {header!r} asks for no bytes.", size)
        return max(0, size - int(last)), size
    start = int(first)
    end = size if last == "" else min(size, int(last) + 1)
    if start >= end:
        raise _RangeError(f"Range {header!r} is outside the blob's {size} bytes.", size)
    return start, end


class _RangeError(InvalidInputError):
    http_status, code = 416, "range_not_satisfiable"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


def _check_hash(actual: str, digest: str) -> None:
    if actual != digest:
        raise InvalidInputError(
            f"The bytes sent hash to {actual[:12]}…, not to {digest[:12]}…: nothing was "
            "stored. Send the blob's own bytes under its BLAKE3 digest.")


def _check_length(request: Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise MalformedRequestError(f"Content-Length {length!r} is not a number.")
        if int(length) > limit:
            raise _too_large(limit, request.method)


def _int_header(request: Request, name: str) -> int:
    value = request.headers.get(name)
    if value is None or not value.isdigit():
        raise MalformedRequestError(f"The {name} header (a byte offset) is missing or not a "
                                    "number.")
    return int(value)


def _too_large(limit: int, what: str) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"A {what} body may carry at most {limit} bytes; send a larger blob as a resumable "
        f"upload in parts (POST {PREFIX}/uploads/{{digest}}).")


def _offset_conflict(digest: str, have: int, size: int) -> JSONResponse:
    error = ConflictError(f"The upload of {digest[:12]}… has {have} bytes; send the part "
                          f"that starts there (Upload-Offset: {have}).")
    return JSONResponse({"error": error.to_dict(), "offset": have, "size": size},
                        status_code=409, headers={OFFSET_HEADER: str(have)})


def _json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI description of a JSON body read by hand (to bound its size)."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


async def _json_body(request: Request, model: type[_Body], limit: int) -> _Body:
    data = await _read_body(request, limit, "JSON")
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise InvalidInputError(f"The request body does not fit: {where}: "
                                f"{first.get('msg', 'invalid')}.") from None


async def _read_body(request: Request, limit: int, what: str) -> bytes:
    _check_length(request, limit)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise _too_large(limit, what)
    return bytes(data)


def _read_meta(meta: Path) -> int | None:
    try:
        size = json.loads(meta.read_text())["size"]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    return size if isinstance(size, int) else None


def _write_meta(meta: Path, size: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=meta.parent, prefix=f".{meta.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:  # a unique name: two clients may start at once
        f.write(json.dumps({"size": size}))
    os.replace(tmp, meta)


__all__ = ["PREFIX", "ObjectLimits", "make_router"]
