"""The client's side: connect out to a federation server and do the tasks it gives.

:func:`run_client` joins, long-polls for tasks and runs them on a :class:`Client`:
``init`` (initial weights), ``fit`` (train, then send the *update*: new − global
weights, clipped and noised when the strategy asks, as under differential privacy),
``evaluate`` and the steps of secure aggregation. It uses the standard library's
``http.client`` only (a client process imports numpy, this module and the user's code).

A lost connection is retried with backoff for ``retry_for`` seconds (a server restarted
mid-round comes back; a session it no longer knows makes the client join again); a wrong
token stops the client at once with the server's message.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import os
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from mloop.core.redact import get_logger
from mloop.errors import ConfigError, InvalidInputError, MloopError, TokenError
from mloop.federated import arrays
from mloop.federated.client import Client
from mloop.federated.protocol import JSON, NPZ, PREFIX, SESSION_HEADER, TaskKind
from mloop.federated.types import Weights

log = get_logger(__name__)

_RETRYABLE = (ConnectionError, socket.timeout, http.client.HTTPException, OSError)


class _Rejoin(Exception):
    """The server no longer knows this session (it restarted): join again."""


class Refused(TokenError):
    """The federation server refused this client's token (401/403)."""


class Unreachable(ConnectionError):
    """The federation server could not be reached for ``retry_for`` seconds."""


@dataclass(frozen=True)
class Endpoint:
    """Where the server is and how to trust it: URL, token and TLS files."""

    url: str
    token: str = field(default="", repr=False)  # empty: mutual TLS admits the client
    ca: str | None = None          # PEM bundle that signed the server's certificate
    cert: str | None = None        # this client's certificate, for mutual TLS
    key: str | None = None
    timeout: float = 120.0         # one request, in seconds (long polls ask for less)


class Connection:
    """One keep-alive HTTP(S) connection to the server, re-opened when it drops."""

    def __init__(self, endpoint: Endpoint) -> None:
        parts = urllib.parse.urlsplit(endpoint.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--server must be an http:// or https:// URL, not "
                              f"{endpoint.url[:100]!r}")
        self.endpoint = endpoint
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.base = parts.path.rstrip("/")
        self._context: ssl.SSLContext | None = None
        if self.https:
            self._context = ssl.create_default_context(cafile=endpoint.ca)
            if endpoint.cert:
                self._context.load_cert_chain(endpoint.cert, endpoint.key)
        elif endpoint.cert:
            raise ConfigError("a client certificate needs an https:// server URL")
        self._conn: http.client.HTTPConnection | None = None
        self.session = ""
        self.name = ""

    def _open(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.https:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.endpoint.timeout, context=self._context)
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port,
                                                        timeout=self.endpoint.timeout)
            self._conn.connect()
            self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def call(self, method: str, path: str, body: bytes | None = None,
             content_type: str = JSON, query: dict[str, str] | None = None) -> bytes:
        """One request; returns the body. 4xx raise the server's error (401/403:
        :class:`TokenError`; 404 on a session route: rejoin)."""
        params = {"client": self.name, **(query or {})}
        url = f"{self.base}{PREFIX}{path}?{urllib.parse.urlencode(params)}"
        headers = {SESSION_HEADER: self.session}
        if self.endpoint.token:
            headers["Authorization"] = f"Bearer {self.endpoint.token}"
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            conn = self._open()
            conn.request(method, url, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            self.close()
            raise
        if response.status < 400:
            return data
        message = _message(data) or response.reason
        if response.status in (401, 403):
            if "session" in message:
                raise _Rejoin(message)
            raise Refused(f"the federation server refused this client: {message}")
        if response.status == 409:
            raise _Stale(message)
        if response.status >= 500:
            raise ConnectionError(f"server error {response.status}: {message}")
        raise InvalidInputError(f"the federation server answered {response.status}: {message}")


class _Stale(Exception):
    """The server no longer waits for this answer (the round closed)."""


def _message(data: bytes) -> str:
    try:
        return str(json.loads(data)["error"]["message"])[:500]
    except (ValueError, KeyError, TypeError):
        return data[:200].decode(errors="replace")


@dataclass
class ClientSummary:
    """What a client did before the server said it was done."""

    name: str
    fits: int = 0
    evaluations: int = 0
    failures: int = 0
    rejoined: int = 0


class ClientRuntime:
    """Runs the tasks of one federation on ``client`` until the server says done."""

    def __init__(self, client: Client, endpoint: Endpoint, *, name: str | None,
                 retry_for: float = 300.0, alive: Callable[[], bool] | None = None,
                 heartbeat: float = 15.0) -> None:
        if not isinstance(client, Client):
            raise ConfigError(f"the client factory returned {type(client).__name__}, not a "
                              "mloop.federated.Client")
        self.client = client
        self.conn = Connection(endpoint)
        self.asked_name = name  # None: the token's name, else one the server accepts
        self.retry_for = retry_for
        self.alive = alive or (lambda: True)
        self.heartbeat = heartbeat
        self.summary = ClientSummary(name or "")
        self._weights: tuple[int, Weights] | None = None
        self._secagg: Any = None

    def run(self) -> ClientSummary:
        """Join, then do tasks until ``done``."""
        try:
            return self._run()
        finally:
            self.conn.close()

    def _run(self) -> ClientSummary:
        self._retry(self._join)
        after = ""
        while True:
            query = {"after": after, "wait": "20"}
            task: dict[str, Any] = self._retry(partial(self._poll, query))
            kind = task.get("kind")
            if kind == TaskKind.DONE.value:
                break
            if kind == TaskKind.WAIT.value:
                continue
            after = task["task"]
            self._do(task)
        return self.summary

    def _poll(self, query: dict[str, str]) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self.conn.call("GET", "/task", query=query))
        return answer

    def _join(self) -> None:
        props = _jsonable(self.client.properties())
        suggested = f"{socket.gethostname().split('.')[0]}-{os.getpid()}"
        body = json.dumps({"name": self.asked_name, "suggested": suggested,
                           "properties": props}).encode()
        self.conn.session = ""
        answer = json.loads(self.conn.call("POST", "/join", body))
        self.conn.session = answer["session"]
        self.conn.name = self.summary.name = answer["client"]

    def _retry(self, call: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        while True:
            try:
                return call()
            except _Rejoin:
                self.summary.rejoined += 1
                self._join()
                deadline = time.monotonic() + self.retry_for
            except (Refused, Unreachable):
                raise
            except _RETRYABLE as exc:
                if time.monotonic() > deadline or not self.alive():
                    raise Unreachable(f"the federation server at {self.conn.endpoint.url} "
                                      f"cannot be reached: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _do(self, task: dict[str, Any]) -> None:
        task_id = task["task"]
        try:
            with _Heartbeat(self, self.heartbeat):
                body, content_type = self._answer(task)
        except (Refused, Unreachable, _Rejoin, _Stale):
            raise  # the runtime's own conversation with the server
        except Exception as exc:  # the user's code (or a task it cannot do): the server
            self.summary.failures += 1  # records this client's failure and goes on
            log.warning("task %s failed: %s: %s", task_id, type(exc).__name__, exc)
            body = json.dumps({"error": f"{type(exc).__name__}: {exc}"[:500]}).encode()
            content_type = JSON
        try:
            self._retry(lambda: self.conn.call("POST", f"/result/{task_id}", body, content_type))
        except _Stale as exc:
            log.info("answer to %s dropped: %s", task_id, exc)
        except InvalidInputError as exc:  # the server refused this answer: recorded there
            self.summary.failures += 1
            log.warning("the server refused the answer to %s: %s", task_id, exc)

    def _answer(self, task: dict[str, Any]) -> tuple[bytes, str]:
        kind = task["kind"]
        if kind == TaskKind.INIT.value:
            return arrays.encode(self.client.get_weights()), NPZ
        if kind == TaskKind.SECAGG.value:
            from mloop.federated.secure import client_step

            return client_step(self, task)
        weights = self.global_weights(int(task["version"]), task.get("weights"))
        config = dict(task.get("config") or {})
        if kind == TaskKind.EVALUATE.value:
            loss, n, metrics = self.client.evaluate(_copy(weights), config)
            self.summary.evaluations += 1
            return json.dumps({"loss": float(loss), "num_examples": int(n),
                               "metrics": _jsonable(metrics)}).encode(), JSON
        if kind == TaskKind.FIT.value and task.get("secure"):
            from mloop.federated.secure import masked_fit

            return masked_fit(self, task, weights)
        if kind == TaskKind.FIT.value:
            delta, n, metrics = self.fit(task, weights)
            return arrays.encode(delta, {"num_examples": n, "metrics": _jsonable(metrics)},
                                 float32=bool(task.get("float32"))), NPZ
        raise InvalidInputError(f"unknown task kind {kind!r}: is this client older than the "
                                "server?")

    def fit(self, task: dict[str, Any], weights: Weights) -> tuple[Weights, int, dict[str, Any]]:
        """Train on the client, then turn its new weights into the update the strategy
        asks for (clipped to ``clip_norm``, plus Gaussian ``noise_std``)."""
        new, n, metrics = self.client.fit(_copy(weights), dict(task.get("config") or {}))
        self.summary.fits += 1
        new = [np.asarray(w) for w in new]
        if arrays.shapes(new) != arrays.shapes(weights):
            return new, int(n), dict(metrics)  # the server rejects it and records why
        delta = [np.subtract(a, b, dtype=np.float64) for a, b in zip(new, weights, strict=True)]
        rule = task.get("update") or {}
        metrics = dict(metrics)
        clip = rule.get("clip_norm")
        if clip is not None:
            norm = float(np.sqrt(sum(float(np.vdot(d, d)) for d in delta)))
            metrics["clipped"] = int(norm > clip)
            if norm > clip:
                delta = [d * (clip / norm) for d in delta]
        noise = float(rule.get("noise_std") or 0.0)
        if noise > 0:
            rng = np.random.default_rng()  # fresh OS entropy: privacy noise is never seeded
            delta = [d + rng.normal(0.0, noise, d.shape) for d in delta]
        out = [d.astype(w.dtype) if w.dtype.kind == "f" else d
               for d, w in zip(delta, weights, strict=True)]
        return out, int(n), metrics

    def global_weights(self, version: int, inline: str | None = None) -> Weights:
        """The global weights of ``version``: from the task when small enough to ride in
        it (base64), else fetched (once per version)."""
        if self._weights is None or self._weights[0] != version:
            if inline is not None:
                data = base64.b64decode(inline, validate=True)
            else:
                data = self._retry(lambda: self.conn.call("GET", f"/weights/{version}"))
            self._weights = (version, arrays.decode(data)[0])
        return self._weights[1]


class _Heartbeat:
    """While a task runs, tell the server every ``every`` seconds that this client is
    alive (on a connection of its own), so a long fit is not taken for a crash."""

    def __init__(self, runtime: ClientRuntime, every: float) -> None:
        self.runtime, self.every = runtime, every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self.every > 0:
            self._thread = threading.Thread(target=self._beat, daemon=True,
                                            name="mloop-fl-heartbeat")
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:  # a beat stuck on the network must not hold the answer
            self._thread.join(timeout=1.0)

    def _beat(self) -> None:
        if self._stop.wait(self.every):
            return  # most tasks end before the first beat: no connection (nor TLS) made
        endpoint = dataclasses.replace(self.runtime.conn.endpoint,
                                       timeout=min(self.runtime.conn.endpoint.timeout, 10.0))
        conn = Connection(endpoint)
        conn.name, conn.session = self.runtime.conn.name, self.runtime.conn.session
        try:
            while True:
                try:
                    conn.call("POST", "/alive", b"{}")
                except (MloopError, _Rejoin, _Stale, *_RETRYABLE) as exc:
                    log.debug("heartbeat failed: %s", exc)
                if self._stop.wait(self.every):
                    return
        finally:
            conn.close()


def _copy(weights: Weights) -> Weights:
    return [w.copy() for w in weights]


def _jsonable(values: Any) -> Any:
    """Metrics and properties as JSON: numpy scalars to Python numbers, keys to text."""
    if isinstance(values, dict):
        return {str(k): _jsonable(v) for k, v in values.items()}
    if isinstance(values, list | tuple):
        return [_jsonable(v) for v in values]
    if isinstance(values, np.generic):
        return values.item()
    if isinstance(values, np.ndarray):
        return values.tolist()
    if values is None or isinstance(values, bool | int | float | str):
        return values
    return str(values)


def run_client(client: Client, server: str, *, token: str = "", name: str | None = None,
               ca: str | None = None, cert: str | None = None, key: str | None = None,
               retry_for: float = 300.0) -> ClientSummary:
    """Take part in the federation at ``server`` with ``client`` until it is done."""
    bound, sep, secret = token.partition("=")
    if sep and bound and secret and len(secret) >= 16:  # NAME=SECRET, as the server's --token
        token, name = secret, name or bound
    endpoint = Endpoint(server, token, ca=ca, cert=cert, key=key)
    return ClientRuntime(client, endpoint, name=name, retry_for=retry_for).run()


__all__ = ["ClientRuntime", "ClientSummary", "Connection", "Endpoint", "Refused", "Unreachable",
           "run_client"]
