"""``fl.simulate``: a whole federation on one machine, each client a real process.

The parent binds the server's socket, then forks one process per client *before* it
imports the server, tracking and store machinery: a client process carries numpy, the
user's code and :mod:`.runtime`, shares those pages with the parent, and starts in
milliseconds. Then the parent serves the federation on that socket over real HTTP, as
``mloop fl server`` does, so what a simulation tests is what a deployment runs.

``mode="thread"`` runs the clients as threads of the parent instead (still over HTTP):
for unit tests and platforms without ``fork``; it shares the interpreter lock, so it is
slower for CPU-bound clients and does not isolate a client's crash.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.connection
import os
import secrets
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mloop.core.redact import get_logger
from mloop.errors import ConfigError
from mloop.federated.client import Client
from mloop.federated.runtime import ClientRuntime, Endpoint
from mloop.federated.types import Weights

if TYPE_CHECKING:
    from mloop.federated.coordinator import EvaluateFn, RoundRecord
    from mloop.federated.strategy import Strategy
    from mloop.project import Project

log = get_logger(__name__)

ClientFn = Callable[[int], Client]


@dataclass
class History:
    """What a federation did: one record per round, the final weights and the run."""

    rounds: list[RoundRecord]
    weights: Weights
    run_id: str | None = None
    model_version: int | None = None
    stopped: str | None = None
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)

    def metric(self, name: str) -> list[tuple[int, float]]:
        """``(round, value)`` of one logged metric, e.g. ``central_accuracy``."""
        return [(r.round, r.metrics()[name]) for r in self.rounds if name in r.metrics()]

    @property
    def final(self) -> dict[str, float]:
        """The last round's metrics."""
        return self.rounds[-1].metrics() if self.rounds else {}


@dataclass(frozen=True)
class Tracking:
    """Where a federation is recorded and what becomes of its model."""

    experiment: str | None = None
    run_name: str | None = None
    register_as: str | None = None
    model_fn: Callable[[Weights], Any] | None = None
    input_example: Any = None
    federation: str | None = None  # the name in clients:/<federation>/<client> lineage
    resume: str | None = None       # a run id: go on from its last checkpointed round

    def __post_init__(self) -> None:
        from mloop.core.uris import check_name

        if self.federation is not None:
            check_name(self.federation, "federation name")
        if self.register_as is not None:
            check_name(self.register_as, "model name")


def simulate(client_fn: ClientFn, n_clients: int, rounds: int,
             strategy: Strategy | None = None, *,
             evaluate_fn: EvaluateFn | None = None,
             initial_weights: Weights | None = None,
             mode: str = "process", round_timeout: float = 120.0,
             secure: bool | Any = False, seed: int = 0, float32: bool = False,
             experiment: str | None = None, register_as: str | None = None,
             model_fn: Callable[[Weights], Any] | None = None,
             tracking: Tracking | None = None, track: bool = True,
             project: Project | None = None) -> History:
    """Run ``rounds`` of federated training over ``n_clients`` clients built by
    ``client_fn(cid)`` (cid 0 … n−1, in each client's own process) and return the history.

    ``strategy``: default FedAvg with every client each round. ``evaluate_fn(round,
    weights) -> (loss, metrics)``: central evaluation (round 0 is the initial model).
    ``secure=True`` (or a :class:`~mloop.federated.secagg.SecureAggregation`): the server
    learns only the sum of the updates. With ``track`` (default) the training is a run of
    ``experiment`` in the current project: per-round metrics, params, clients, the final
    weights, and — with ``model_fn(weights) -> model`` — a logged model, registered as
    ``register_as``. ``mode="thread"`` runs clients as threads (tests, no fork).
    """
    if n_clients < 1:
        raise ConfigError("n_clients must be at least 1")
    if mode not in ("process", "thread"):
        raise ConfigError(f"mode must be 'process' or 'thread', not {mode!r}")
    if mode == "process" and not hasattr(os, "fork"):
        raise ConfigError("this platform cannot fork: use mode='thread'")
    tracking = tracking or Tracking(experiment=experiment, register_as=register_as,
                                    model_fn=model_fn)
    if tracking.register_as and tracking.model_fn is None:
        raise ConfigError("register_as needs model_fn(weights) -> model, which turns the final "
                          "weights into a model to log (the ready clients have one: e.g. "
                          "SGDClient.model_fn(estimator, classes=...))")
    if not track and tracking.resume:
        raise ConfigError("resume needs track=True: the checkpoints belong to a run")
    listener = socket.create_server(("127.0.0.1", 0), backlog=max(128, n_clients))
    # before any client connects: an accepted socket takes the listener's options as they
    # were when the client's SYN arrived (see server.serve)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    port = listener.getsockname()[1]
    token = secrets.token_urlsafe(24)
    endpoint = Endpoint(f"http://127.0.0.1:{port}", token, timeout=round_timeout + 60)
    clients = _Clients(client_fn, n_clients, endpoint, mode, listener)
    try:
        clients.start()  # before the server's imports: the clients never carry them
        from mloop.federated.service import Federation

        federation = Federation.build(strategy, rounds=rounds, n_clients=n_clients,
                                      evaluate_fn=evaluate_fn, initial_weights=initial_weights,
                                      round_timeout=round_timeout, secure=secure, seed=seed,
                                      float32=float32, tracking=tracking if track else None,
                                      project=project, population=n_clients)
        return federation.serve(token, sock=listener, on_loop=clients.watch)
    finally:
        clients.stop()
        listener.close()


class _Clients:
    """The simulation's client processes (or threads) and the watch on them."""

    def __init__(self, client_fn: ClientFn, n: int, endpoint: Endpoint, mode: str,
                 listener: socket.socket) -> None:
        self.client_fn, self.n, self.endpoint, self.mode = client_fn, n, endpoint, mode
        self.listener = listener
        self.procs: list[Any] = []
        self.threads: list[threading.Thread] = []
        self.watcher: threading.Thread | None = None
        self._lost: Callable[[str, str], None] | None = None
        self._early: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self) -> None:
        if self.mode == "thread":
            for cid in range(self.n):
                t = threading.Thread(target=self._thread_main, args=(cid,), daemon=True,
                                     name=f"mloop-fl-client-{cid}")
                t.start()
                self.threads.append(t)
            return
        ctx = multiprocessing.get_context("fork")
        # What the children inherit stays shared: frozen objects are never visited by the
        # parent's collections (which would copy their pages in every child) until the
        # children end (stop). No collection first: it costs ~0.1 s and saves little.
        gc.freeze()
        if threading.active_count() > 1:
            log.warning("forking client processes while %d other thread(s) run: a lock one "
                        "of them holds stays locked in the clients (use mode='thread' if "
                        "they hang)", threading.active_count() - 1)
        for cid in range(self.n):
            proc = ctx.Process(target=_process_main, name=f"mloop-fl-client-{cid}",
                               args=(self.client_fn, cid, self.endpoint, self.listener,
                                     os.getpid()), daemon=True)
            proc.start()
            self.procs.append(proc)

    def _thread_main(self, cid: int) -> None:
        try:
            runtime = ClientRuntime(self.client_fn(cid), self.endpoint, name=f"client-{cid}",
                                    retry_for=30.0, alive=lambda: not self._stop.is_set())
            runtime.run()
        except Exception as exc:  # recorded by the server as this client's failure
            log.warning("client-%d stopped: %s: %s", cid, type(exc).__name__, exc)
            if not self._stop.is_set():
                self._ended(f"client-{cid}", f"the client thread raised {type(exc).__name__}")

    def _ended(self, name: str, reason: str) -> None:
        with self._lock:  # before the server runs, kept until watch() hands them on
            if self._lost is None:
                self._early.append((name, reason))
                return
        self._lost(name, reason)

    def watch(self, lost: Callable[[str, str], None]) -> None:
        """Call ``lost(name, reason)`` (thread-safe) when a client process or thread ends
        early."""
        with self._lock:
            self._lost = lost
            early, self._early = self._early, []
        for name, reason in early:
            lost(name, reason)
        if not self.procs:
            return
        self.watcher = threading.Thread(target=self._watch, args=(lost,), daemon=True,
                                        name="mloop-fl-watch")
        self.watcher.start()

    def _watch(self, lost: Callable[[str, str], None]) -> None:
        pending = {p.sentinel: p for p in self.procs}
        while pending and not self._stop.is_set():
            for sentinel in multiprocessing.connection.wait(list(pending), timeout=0.5):
                proc = pending.pop(sentinel)
                proc.join()
                if proc.exitcode != 0 and not self._stop.is_set():
                    lost(proc.name.removeprefix("mloop-fl-"),
                         f"the client process ended with exit code {proc.exitcode}")

    def stop(self, grace: float = 5.0) -> None:
        """Wait up to ``grace`` seconds in all for the clients to end, then kill the rest."""
        import time

        self._stop.set()
        deadline = time.monotonic() + grace
        for proc in self.procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        for t in self.threads:
            t.join(timeout=5)
        if self.watcher is not None:
            self.watcher.join()
        if self.mode == "process":
            gc.unfreeze()


def _process_main(client_fn: ClientFn, cid: int, endpoint: Endpoint,
                  listener: socket.socket, parent: int) -> None:
    listener.close()  # the server's socket is the parent's alone
    try:
        client = client_fn(cid)
        ClientRuntime(client, endpoint, name=f"client-{cid}", retry_for=30.0,
                      alive=lambda: os.getppid() == parent).run()
    except Exception as exc:
        print(f"client-{cid}: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)


__all__ = ["ClientFn", "History", "Tracking", "simulate"]
