"""The object store of an ``mloop server``, over HTTP (``/api/v1/objects``).

:class:`HttpObjectStore` implements the whole :class:`~mloop.objects.base.ObjectStore`
protocol against the routes of :mod:`mloop.server.objects`. One keep-alive
``httpx.Client`` per store, safe to share between threads. Connection failures are
retried with backoff; a server that stays unreachable is a
:class:`~mloop.errors.ServiceUnavailableError` naming it. Large blobs travel as
resumable uploads: after a dropped connection or a restart of the server, the upload
asks the server how much it has and continues from there. Every read is verified
against its digest here, whatever the server (or the pre-signed URL it redirects to)
sent.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from mloop._version import __version__
from mloop.core.client import API_VERSION, client_headers
from mloop.core.hashing import CHUNK, hash_bytes, hash_file, new_hasher
from mloop.core.redact import get_logger, redact
from mloop.errors import (
    ConfigError,
    InternalError,
    InvalidInputError,
    MloopError,
    ObjectNotFoundError,
    ServiceUnavailableError,
)
from mloop.objects.base import ObjectStore, check_digest, check_record_name, corrupt

log = get_logger("mloop.objects")

PREFIX = "/api/v1/objects"
MISSING_BATCH = 5_000  # digests per POST /missing (the server takes up to 10,000)
PART = 16 << 20  # bytes per part of a resumable upload; blobs up to this go in one PUT
_RETRY_STATUS = frozenset({502, 503, 504})


class HttpObjectStore:
    """The object store of the mloop server at ``base_url`` (its root,
    ``http://host:5000``); ``token`` is sent as ``Authorization: Bearer``.

    ``presign``: downloads ask for a pre-signed URL of the store behind the server
    (S3) and fetch from there, sparing the server the bytes. ``retries`` connection
    attempts per request, ``backoff`` seconds before the first retry (doubling).
    """

    copies_from_source = False

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 60.0,
                 retries: int = 5, backoff: float = 0.2, presign: bool = False,
                 part_size: int = PART) -> None:
        self.url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.presign = presign
        self.part_size = part_size
        self._client = httpx.Client(
            base_url=self.url + PREFIX, headers=client_headers(token),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16))

    def __repr__(self) -> str:
        return f"HttpObjectStore({redact(self.url)!r})"

    def close(self) -> None:
        """Close the keep-alive connections."""
        self._client.close()

    def __enter__(self) -> HttpObjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes --------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> str:
        digest = hash_bytes(data)
        self.put_chunk(digest, data)
        return digest

    def put_chunk(self, digest: str, data: bytes | memoryview,
                  source: tuple[int, int] | None = None) -> bool:
        check_digest(digest)
        view = memoryview(data)
        if len(view) > self.part_size:
            return self._upload(digest, len(view), lambda at, n: bytes(view[at:at + n]))
        response = self._send("PUT", f"/{digest}", content=bytes(view))
        return response.status_code == 201

    def put_file(self, path: str | Path) -> str:
        digest = hash_file(path)
        size = Path(path).stat().st_size
        if size <= self.part_size:
            self._send("PUT", f"/{digest}", content=Path(path).read_bytes())
            return digest
        with open(path, "rb") as f:
            def read_at(at: int, n: int) -> bytes:
                f.seek(at)
                return f.read(n)

            self._upload(digest, size, read_at)
        return digest

    def sync(self) -> None:
        """Nothing to flush: the server stored each blob before it answered."""

    def forget_unsynced(self) -> None:
        """Nothing to forget (see :meth:`sync`)."""

    def delete(self, digest: str) -> None:
        self._send("DELETE", f"/{check_digest(digest)}")

    def put_record(self, name: str, data: bytes) -> bytes | None:
        response = self._send("PUT", f"/records/{check_record_name(name)}", content=data)
        return None if response.status_code == 201 else response.content

    # -- reads ---------------------------------------------------------------------------

    def get_bytes(self, digest: str) -> bytes:
        response = self._send("GET", f"/{check_digest(digest)}", params=self._params())
        if (actual := hash_bytes(response.content)) != digest:
            raise corrupt(digest, self.url, actual)
        return response.content

    def get_file(self, digest: str, dest: str | Path) -> None:
        check_digest(digest)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                hasher = new_hasher()
                self._download(digest, f, hasher.update)
                f.flush()
                os.fsync(f.fileno())
            if (actual := hasher.hexdigest()) != digest:
                raise corrupt(digest, self.url, actual)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def exists(self, digest: str) -> bool:
        response = self._send("HEAD", f"/{check_digest(digest)}", allow={404})
        return response.status_code == 200

    def missing(self, digests: Iterable[str]) -> set[str]:
        wanted = sorted({check_digest(d) for d in digests})
        found: set[str] = set()
        for i in range(0, len(wanted), MISSING_BATCH):
            batch = wanted[i:i + MISSING_BATCH]
            found.update(self._send("POST", "/missing", json={"digests": batch})
                         .json()["missing"])
        return found

    def size(self, digest: str) -> int:
        response = self._send("HEAD", f"/{check_digest(digest)}")
        return int(response.headers["x-mloop-size"])

    def iter_digests(self) -> Iterator[str]:
        """Every digest on the server (an admin token's right: garbage collection)."""
        response = self._send("GET", "/")
        yield from filter(None, response.text.splitlines())

    def get_record(self, name: str) -> bytes | None:
        response = self._send("GET", f"/records/{check_record_name(name)}", allow={404})
        return None if response.status_code == 404 else response.content

    def list_records(self, folder: str) -> list[str]:
        response = self._send("GET", "/records", params={"folder": check_record_name(folder)})
        return list(response.json()["names"])

    # -- transfers -----------------------------------------------------------------------

    def _params(self) -> dict[str, str]:
        return {"presign": "1"} if self.presign else {}

    def _upload(self, digest: str, size: int, read_at: Callable[[int, int], bytes]) -> bool:
        """A resumable upload; whether the blob was new on the server."""
        state = self._send("POST", f"/uploads/{digest}", json={"size": size}).json()
        offset, failures = int(state["offset"]), 0
        while not state["stored"]:
            part = read_at(offset, min(self.part_size, size - offset))
            try:
                response = self._client.patch(
                    f"/uploads/{digest}", content=part,
                    headers={"Upload-Offset": str(offset)})
            except httpx.TransportError as exc:
                failures += 1
                if failures > self.retries:
                    raise self._unavailable(exc) from exc
                self._wait(failures, exc)
                state = self._send("POST", f"/uploads/{digest}", json={"size": size}).json()
                offset = int(state["offset"])
                log.info("resuming the upload of %s… at byte %d", digest[:12], offset)
                continue
            if response.status_code in (404, 409):  # another offset, another client's
                # part, or an upload another client just finished: ask where things stand
                failures += 1
                if failures > self.retries:
                    raise _error_of(response, self.url)
                self._wait(failures, None)
                state = self._send("POST", f"/uploads/{digest}", json={"size": size}).json()
                offset = int(state["offset"])
                continue
            if response.status_code >= 400:
                raise _error_of(response, self.url)
            state, failures = response.json(), 0
            offset = int(state["offset"])
        return bool(state.get("new", False))

    def _download(self, digest: str, f: Any, update: Callable[[bytes], Any]) -> None:
        """Stream the blob into ``f``; after a dropped connection, continue with a Range
        request from the bytes already written."""
        done, failures = 0, 0
        while True:
            headers = {"Range": f"bytes={done}-"} if done else {}
            try:
                with self._client.stream("GET", f"/{digest}", params=self._params(),
                                         headers=headers, follow_redirects=True) as response:
                    if response.status_code >= 400:
                        response.read()
                        if response.status_code in _RETRY_STATUS and failures < self.retries:
                            failures += 1
                            self._wait(failures, None)
                            continue
                        raise _error_of(response, self.url)
                    if done and response.status_code != 206:
                        raise InternalError(f"The server at {self.url} ignored a Range "
                                            "request; download the blob again.")
                    for chunk in response.iter_bytes(CHUNK):
                        f.write(chunk)
                        update(chunk)
                        done += len(chunk)
                return
            except httpx.TransportError as exc:
                failures += 1
                if failures > self.retries:
                    raise self._unavailable(exc) from exc
                self._wait(failures, exc)

    def _send(self, method: str, path: str, *, allow: frozenset[int] | set[int] = frozenset(),
              **kwargs: Any) -> httpx.Response:
        """One request, retried on connection failures and 502/503/504; a 4xx/5xx not in
        ``allow`` raises the error the server named."""
        if method == "GET":
            kwargs.setdefault("follow_redirects", True)
        failures = 0
        while True:
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                failures += 1
                if failures > self.retries:
                    raise self._unavailable(exc) from exc
                self._wait(failures, exc)
                continue
            if response.status_code in _RETRY_STATUS and failures < self.retries:
                failures += 1
                self._wait(failures, None)
                continue
            if response.status_code == 404 and method != "HEAD":
                error = _json(response).get("error")
                if not isinstance(error, dict):
                    raise self._no_routes()  # a route unknown there, not a blob it lacks
                if error.get("code") != ObjectNotFoundError.code:
                    raise _error_of(response, self.url)  # e.g. "no route …": say so
            if response.status_code >= 400 and response.status_code not in allow:
                raise _error_of(response, self.url)
            return response

    def _no_routes(self) -> ConfigError:
        return ConfigError(
            f"The server at {self.url} does not answer the object routes ({PREFIX}): is it "
            f"an mloop server, and one as new as this client (mloop {__version__}, API "
            f"v{API_VERSION})? Check the URL, or upgrade the server.")

    def _wait(self, failures: int, exc: Exception | None) -> None:
        delay = self.backoff * 2 ** (failures - 1)
        log.debug("object server %s: %s; retrying in %.1f s", redact(self.url),
                  type(exc).__name__ if exc else "unavailable", delay)
        time.sleep(delay)

    def _unavailable(self, exc: Exception) -> ServiceUnavailableError:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return ServiceUnavailableError(
            f"The mloop server at {self.url} cannot be reached ({detail}) after "
            f"{self.retries + 1} attempts. Check that `mloop server` runs there and the "
            "network between, then run the command again (only what is still missing "
            "travels).")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_classes() -> dict[str, type[MloopError]]:
    """Every error class by its code (the first, most general, class of a code wins)."""
    found: dict[str, type[MloopError]] = {}
    todo: list[type[MloopError]] = [MloopError]
    while todo:
        cls = todo.pop(0)
        found.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return found


def _error_of(response: httpx.Response, url: str) -> MloopError:
    """The server's JSON error as the mloop error it names."""
    error = _json(response).get("error")
    if response.status_code == 404 and not isinstance(error, dict):
        return ObjectNotFoundError(f"Not found on the server at {url}.")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        cls = _error_classes().get(str(error.get("code")))
        if cls is not None and cls is not MloopError:
            exc = cls.__new__(cls)
            MloopError.__init__(exc, error["message"])
            return exc
        message = error["message"]
    else:
        message = response.text[:200] or response.reason_phrase
    if response.status_code in _RETRY_STATUS:
        return ServiceUnavailableError(f"The mloop server at {url} is unavailable "
                                       f"({response.status_code}): {message}")
    if response.status_code == 404:
        return ObjectNotFoundError(f"{message} (server {url})")
    if 400 <= response.status_code < 500:
        return InvalidInputError(f"The mloop server at {url} refused the request "
                                 f"({response.status_code}): {message}")
    return InternalError(f"The mloop server at {url} answered {response.status_code}: "
                         f"{message}")


# mypy checks here that the class implements the protocol (records included) in full
_IMPLEMENTS: type[ObjectStore] = HttpObjectStore
