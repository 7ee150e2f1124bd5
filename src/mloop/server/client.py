"""The HTTP Backend: the repositories of a project whose store is an ``mloop server``.

With ``MLOOP_STORE_URI=http://host:5000`` (or ``MLOOP_TRACKING_URI``), every repository
call of the Python API and the CLI becomes one ``POST /api/v1/<repository>/<method>``
over one keep-alive connection: the arguments are encoded from the method's type hints,
the answer decoded into the same records the SQL repositories return, and an error the
server raises on purpose is raised here as the same :mod:`mloop.errors` class. The
stat cache (this machine's file stats) stays local.

Credentials: ``MLOOP_TOKEN``, else the token ``mloop login URL`` saved for this server
(:func:`mloop.core.credentials.server_token`).
"""

from __future__ import annotations

import threading
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from mloop import errors
from mloop.core.client import client_headers, warn_if_plain_http
from mloop.core.redact import get_logger
from mloop.errors import ConfigError, MloopError, ServiceUnavailableError
from mloop.server import methods as catalogue
from mloop.server.codec import decode, dumps, encode, loads

if TYPE_CHECKING:
    import httpx

    from mloop.project import Project
    from mloop.repositories.alerts import Alerts
    from mloop.repositories.api_tokens import ApiTokens
    from mloop.repositories.audit import Audit
    from mloop.repositories.automation import Automation
    from mloop.repositories.datasets import Datasets, StatCache, StoredRemotes
    from mloop.repositories.deployments import Deployments
    from mloop.repositories.evaluations import Evaluations
    from mloop.repositories.experiments import Experiments
    from mloop.repositories.feedback import FeedbackLabels
    from mloop.repositories.lineage import LineageEdges
    from mloop.repositories.models import Models
    from mloop.repositories.pipelines import PipelineRuns
    from mloop.repositories.precompute import PrecomputeTables
    from mloop.repositories.prediction_segments import PredictionSegments
    from mloop.repositories.references import BlobReferences
    from mloop.repositories.runs import Runs
    from mloop.repositories.traffic import Traffic

log = get_logger("mloop.server")

CONNECT_RETRIES = (0.1, 0.3, 1.0)  # a connection refused: retried (nothing was sent)


def server_url(uri: str) -> str:
    """``http(s)://host:port`` of a store URI, without a trailing slash or a path."""
    return uri.rstrip("/")


class Connection:
    """One keep-alive HTTP connection pool to a server, shared by the threads of a process."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        self.url = server_url(url)
        self._token = token
        self._timeout = timeout
        warn_if_plain_http(self.url, token)
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._pid = 0

    def __repr__(self) -> str:
        return f"Connection({self.url!r})"

    def headers(self) -> dict[str, str]:
        return {**client_headers(self._token), "Content-Type": "application/json"}

    @property
    def client(self) -> httpx.Client:
        import os

        with self._lock:
            if self._client is None or self._pid != os.getpid():  # a fork gets its own
                import httpx

                self._client = httpx.Client(
                    base_url=self.url, headers=self.headers(),
                    timeout=httpx.Timeout(self._timeout, connect=10.0),
                    limits=httpx.Limits(max_keepalive_connections=8))
                self._pid = os.getpid()
            return self._client

    def unreachable(self, exc: Exception) -> ServiceUnavailableError:
        return ServiceUnavailableError(
            f"Cannot reach the mloop server at {self.url} ({type(exc).__name__}: "
            f"{str(exc)[:200]}). Check that it runs (`mloop server`) and that the store "
            "URI (MLOOP_STORE_URI) names it.")

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; connection failures retried, then :class:`ServiceUnavailableError`;
        an error answer raised as its :mod:`mloop.errors` class."""
        import httpx

        for pause in (*CONNECT_RETRIES, None):
            try:
                response = self.client.request(method, path, **kwargs)
                break
            except httpx.ConnectError as exc:  # nothing was sent: safe to try again
                if pause is None:
                    raise self.unreachable(exc) from None
                time.sleep(pause)
            except httpx.TransportError as exc:
                raise self.unreachable(exc) from None
        if response.status_code >= 400:
            raise error_of(response, self.url)
        return response

    def call(self, repository: str, method: str, body: bytes) -> Any:
        """POST one repository call; the decoded JSON ``result``."""
        response = self.request("POST", f"/api/v1/{repository}/{method}", content=body)
        return loads(response.content)["result"]

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def error_of(response: httpx.Response, url: str) -> MloopError:
    """The :mod:`mloop.errors` exception an error answer stands for."""
    try:
        body = response.json()
        error = body["error"]
        message = str(error["message"])
        name = str(error.get("type") or "")
    except (ValueError, KeyError, TypeError):
        message = response.text[:300] or response.reason_phrase
        name = ""
    cls = getattr(errors, name, None) if name else None
    if not (isinstance(cls, type) and issubclass(cls, MloopError)):
        cls = _BY_STATUS.get(response.status_code, MloopError)
    if cls is ServiceUnavailableError or response.status_code in (502, 504):
        message = f"The mloop server at {url} answered {response.status_code}: {message}"
    found = cls.__new__(cls)
    Exception.__init__(found, message)
    found.message = message
    retry = response.headers.get("Retry-After")
    if retry is not None:
        found.retry_after = float(retry) if retry.isdigit() else 1.0  # type: ignore[attr-defined]
    return cast(MloopError, found)


_BY_STATUS: dict[int, type[MloopError]] = {
    400: errors.MalformedRequestError, 401: errors.TokenError, 403: errors.ForbiddenError,
    404: errors.NotFoundError, 409: errors.ConflictError, 413: errors.PayloadTooLargeError,
    422: errors.InvalidInputError, 429: errors.ServiceUnavailableError,
    503: errors.ServiceUnavailableError, 502: errors.ServiceUnavailableError,
    504: errors.ServiceUnavailableError,
}


class HttpRepository:
    """One repository of the server: an attribute per served method."""

    def __init__(self, connection: Connection, repository: str, project: Project) -> None:
        self._connection = connection
        self._repository = repository
        self._project = project

    def __repr__(self) -> str:
        return f"HttpRepository({self._repository!r}, {self._connection.url!r})"

    def __getattr__(self, name: str) -> Any:
        method = catalogue.lookup(self._repository, name)
        if method is None:
            raise AttributeError(name)
        bound = _proxy(self._connection, method, self._project)
        setattr(self, name, bound)  # found once per repository object
        return bound


def _proxy(connection: Connection, method: catalogue.Method, project: Project) -> Any:
    signature = method.signature
    returns = method.returns

    def call(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(None, *args, **kwargs)
        body = {name: encode(value) for name, value in list(bound.arguments.items())[1:]}
        result = connection.call(method.repository, method.name, dumps(body))
        return _attach(decode(returns, result, "result"), project)

    call.__name__ = method.name
    call.__doc__ = method.doc
    return call


def _attach(value: Any, project: Project) -> Any:
    """Give records that read more on demand (a run's metric history) their project."""
    from mloop.repositories.runs import Run, SearchPage

    if isinstance(value, Run):
        object.__setattr__(value, "_project", project)
    elif isinstance(value, SearchPage):
        object.__setattr__(value, "rows", [tuple(r) for r in value.rows])
    return value


class LocalStatCache:
    """This machine's file stats, kept in memory for the process (never on the server:
    its paths are this machine's)."""

    def __init__(self) -> None:
        self._entries: dict[str, Any] = {}
        self._lock = threading.Lock()

    def lookup(self, paths: list[str]) -> dict[str, Any]:
        with self._lock:
            return {p: self._entries[p] for p in paths if p in self._entries}

    def save(self, entries: list[Any]) -> None:
        with self._lock:
            for entry in entries:
                self._entries[entry.path] = entry

    def forget(self, paths: list[str]) -> None:
        with self._lock:
            for p in paths:
                self._entries.pop(p, None)


class HttpBackend:
    """Every repository of a project, over its server (see the module docstring)."""

    def __init__(self, project: Project) -> None:
        from mloop.core.credentials import server_token

        self.project = project
        url = server_url(project.settings.store_uri)
        self.connection = Connection(url, server_token(url))

    def __repr__(self) -> str:
        return f"HttpBackend({self.connection.url})"

    def _repo(self, name: str) -> Any:
        return HttpRepository(self.connection, name, self.project)

    def close(self) -> None:
        self.connection.close()

    @cached_property
    def experiments(self) -> Experiments:
        return cast("Experiments", self._repo("experiments"))

    @cached_property
    def runs(self) -> Runs:
        return cast("Runs", self._repo("runs"))

    @cached_property
    def datasets(self) -> Datasets:
        return cast("Datasets", self._repo("datasets"))

    @cached_property
    def stat_cache(self) -> StatCache:
        return cast("StatCache", LocalStatCache())

    @cached_property
    def stored_remotes(self) -> StoredRemotes:
        return cast("StoredRemotes", self._repo("stored_remotes"))

    @cached_property
    def lineage(self) -> LineageEdges:
        return cast("LineageEdges", self._repo("lineage"))

    @cached_property
    def blob_references(self) -> BlobReferences:
        return cast("BlobReferences", self._repo("blob_references"))

    @cached_property
    def models(self) -> Models:
        return cast("Models", self._repo("models"))

    @cached_property
    def evaluations(self) -> Evaluations:
        return cast("Evaluations", self._repo("evaluations"))

    @cached_property
    def precompute(self) -> PrecomputeTables:
        return cast("PrecomputeTables", self._repo("precompute"))

    @cached_property
    def feedback(self) -> FeedbackLabels:
        return cast("FeedbackLabels", self._repo("feedback"))

    @cached_property
    def alerts(self) -> Alerts:
        return cast("Alerts", self._repo("alerts"))

    @cached_property
    def deployments(self) -> Deployments:
        return cast("Deployments", self._repo("deployments"))

    @cached_property
    def traffic(self) -> Traffic:
        return cast("Traffic", self._repo("traffic"))

    @cached_property
    def prediction_segments(self) -> PredictionSegments:
        return cast("PredictionSegments", self._repo("prediction_segments"))

    @cached_property
    def pipeline_runs(self) -> PipelineRuns:
        return cast("PipelineRuns", self._repo("pipeline_runs"))

    @cached_property
    def automation(self) -> Automation:
        return cast("Automation", self._repo("automation"))

    # ── the server's own tables: managed on the server's machine, never over HTTP ──
    @property
    def api_tokens(self) -> ApiTokens:
        raise ConfigError("Tokens are managed with direct access to the server's store: "
                          "run `mloop server token …` on the server's machine (or with "
                          "--store URI).")

    @property
    def audit(self) -> Audit:
        raise ConfigError("The audit log is read with direct access to the server's store: "
                          "run `mloop server audit` on the server's machine (or with "
                          "--store URI).")
