"""The server's side of a federation: who is connected, what each client must do next,
and the rounds.

One :class:`Coordinator` lives on the server's event loop (no locks: every method runs
on that loop). The HTTP layer (:mod:`.server`) turns requests into calls of
:meth:`join`, :meth:`next_task`, :meth:`weights` and :meth:`submit`; :meth:`run` drives
the rounds:

1. wait until ``min_available_clients`` have joined (or fail after ``wait_timeout``);
2. sample the round's clients, hand each a ``fit`` task and collect answers until all
   arrived or ``round_timeout`` passed: a client that answers too late, sends weights of
   the wrong shape or NaN, raises in ``fit`` or disconnects is a *failure*, recorded, and
   the round aggregates what arrived (nothing arrived: the round fails, the model stays);
3. aggregate (in a worker thread: big models must not stall the loop), evaluate on the
   clients and centrally, and hand the :class:`RoundRecord` to the observer, which logs
   and checkpoints it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mloop.core.redact import get_logger
from mloop.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
    TokenError,
)
from mloop.federated import answers, arrays
from mloop.federated.protocol import NAME_RE, TaskKind
from mloop.federated.strategy import Strategy
from mloop.federated.types import EvalResult, Failure, Update, Weights

log = get_logger(__name__)

#: weights messages up to this size travel inside the task (base64) instead of a GET
INLINE_MAX = 256 << 10

#: ``evaluate_fn(server_round, weights) -> (loss, metrics)`` or None to skip
EvaluateFn = Callable[[int, Weights], "tuple[float, dict[str, Any]] | None"]


@dataclass
class Settings:
    """How the server runs a federation (the strategy decides who and how to combine)."""

    rounds: int
    round_timeout: float = 120.0
    wait_timeout: float = 300.0
    float32: bool = False
    seed: int = 0
    secure: Any = None  # a secagg.SecureAggregation: masked sums instead of updates
    #: every client there can be (a simulation's): one that is gone lowers what rounds
    #: wait for, instead of making them wait for a client that will not come back
    population: int | None = None
    #: a client not heard from for this long (no poll, no heartbeat) is dropped
    stale_after: float = 90.0
    max_clients: int = 10_000

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise InvalidInputError("rounds must be at least 1")
        if self.round_timeout <= 0 or self.wait_timeout <= 0:
            raise InvalidInputError("round_timeout and wait_timeout must be positive seconds")


@dataclass
class RoundRecord:
    """What happened in one round."""

    round: int
    fit_clients: list[str]
    answered: list[str]
    failures: list[Failure]
    central: dict[str, float] = field(default_factory=dict)
    federated: dict[str, float] = field(default_factory=dict)
    strategy: dict[str, float] = field(default_factory=dict)
    bytes_up: int = 0
    bytes_down: int = 0
    seconds: float = 0.0

    def metrics(self) -> dict[str, float]:
        """The round's numbers as run metrics (``central_*``, ``fed_*`` and counts)."""
        out = {f"central_{k}": v for k, v in self.central.items()}
        out.update({f"fed_{k}": v for k, v in self.federated.items()})
        out.update(self.strategy)
        out.update({"clients_sampled": float(len(self.fit_clients)),
                    "clients_answered": float(len(self.answered)),
                    "clients_failed": float(len(self.failures)),
                    "bytes_up": float(self.bytes_up), "bytes_down": float(self.bytes_down),
                    "round_seconds": self.seconds})
        return out


class Observer(Protocol):
    """Told about the federation as it goes (tracking, checkpoints, progress)."""

    def started(self, coordinator: Coordinator) -> None: ...
    def round_done(self, record: RoundRecord, weights: Weights, coordinator: Coordinator
                   ) -> None: ...


@dataclass
class _Slot:
    name: str
    session: str
    properties: dict[str, Any]
    task: dict[str, Any] | None = None
    future: asyncio.Future[Any] | None = None
    parse: Any = None  # checks and decodes the answer to the open task (.answers)
    fetched: str | None = None  # the id of the last task this client was given
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    last_seen: float = field(default_factory=time.monotonic)
    polling: int = 0


class Coordinator:
    """The rounds of one federation and the state every request handler reads."""

    def __init__(self, strategy: Strategy, settings: Settings, *,
                 initial_weights: Weights | None = None,
                 evaluate_fn: EvaluateFn | None = None,
                 observer: Observer | None = None, start_round: int = 1) -> None:
        self.strategy = strategy
        self.settings = settings
        self.evaluate_fn = evaluate_fn
        self.observer = observer
        self.weights_now: Weights | None = initial_weights
        self.version = start_round - 1  # the round whose aggregate ``weights_now`` is
        self.start_round = start_round
        self.history: list[RoundRecord] = []
        self.stopped: str | None = None
        self.initial_central: dict[str, float] = {}
        self.finished = False
        self.clients: dict[str, _Slot] = {}
        self.gone: set[str] = set()  # clients whose process ended (a simulation's)
        self.properties: dict[str, dict[str, Any]] = {}
        self._seq = 0
        self._joined = asyncio.Condition()
        self._blobs: dict[int, bytes] = {}
        self._inline_b64: str | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._bytes_up = 0
        self._bytes_down = 0

    # -- what the HTTP layer calls -------------------------------------------------
    async def join(self, name: str, properties: dict[str, Any]) -> str:
        """Register client ``name`` (again: a restarted client replaces its old session)."""
        if not NAME_RE.match(name):
            raise InvalidInputError(f"client name {name[:80]!r} is not valid: use 1-64 "
                                    "letters, digits, '.', '_' or '-'")
        old = self.clients.get(name)
        if old is not None:
            self._fail(old, "the client joined again (restarted)")
        elif len(self.clients) >= self.settings.max_clients:
            raise ServiceUnavailableError(f"this federation has its {len(self.clients)} "
                                          "clients already")
        self.gone.discard(name)
        session = secrets.token_urlsafe(16)
        self.clients[name] = _Slot(name, session, dict(properties))
        self.properties[name] = dict(properties)
        if self.finished:
            self._give(self.clients[name], {"kind": TaskKind.DONE.value})
        async with self._joined:
            self._joined.notify_all()
        log.info("client %s joined (%d connected)", name, len(self.clients))
        return session

    def slot(self, name: str, session: str) -> _Slot:
        """The client's slot, if ``session`` is its current one (else 401: join again)."""
        slot = self.clients.get(name)
        if slot is None or not secrets.compare_digest(slot.session, session):
            raise TokenError("unknown or ended session: join again (POST /fl/v1/join)")
        slot.last_seen = time.monotonic()
        return slot

    async def next_task(self, slot: _Slot, after: str | None, wait: float) -> dict[str, Any]:
        """The client's current task if it is not ``after``, waiting up to ``wait`` s."""
        deadline = time.monotonic() + wait
        slot.polling += 1
        try:
            while True:
                task = slot.task
                if task is not None and task["task"] != after:
                    slot.fetched = task["task"]
                    return task
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return {"kind": TaskKind.WAIT.value}
                slot.wake.clear()
                try:
                    await asyncio.wait_for(slot.wake.wait(), remaining)
                except TimeoutError:
                    return {"kind": TaskKind.WAIT.value}
        finally:
            slot.polling -= 1
            slot.last_seen = time.monotonic()

    def weights(self, version: int) -> bytes:
        """The global weights of ``version`` as a message (cached; only the current one)."""
        blob = self._blobs.get(version)
        if blob is None:
            raise NotFoundError(f"no global weights of version {version}: ask for the "
                                "version your task names")
        self._bytes_down += len(blob)
        return blob

    def expect(self, slot: _Slot, task_id: str) -> asyncio.Future[Any]:
        """The future of the client's open task ``task_id``; 409 when it is not open (the
        round closed, the client joined again): checked before a body is read."""
        task, future = slot.task, slot.future
        if task is None or task["task"] != task_id or future is None or future.done():
            raise ConflictError(f"task {task_id[:40]!r} is not open any more (the round "
                                "closed or the client joined again); wait for the next task")
        return future

    def submit(self, slot: _Slot, task_id: str, answer: Any, size: int = 0) -> None:
        """Check ``answer`` (:mod:`.answers`) and hand it to the round waiting for task
        ``task_id``; a malformed one is this client's failure and a 422 to it alone."""
        future = self.expect(slot, task_id)
        self._bytes_up += size
        try:
            parsed = slot.parse(answer) if slot.parse is not None else answer
        except InvalidInputError as exc:
            future.set_exception(InvalidInputError(f"rejected: {exc}"))
            raise
        future.set_result(parsed)

    def reject(self, slot: _Slot, task_id: str, error: InvalidInputError) -> None:
        """The answer to task ``task_id`` is not one (not a message, over the limit): the
        client's failure this round."""
        self.expect(slot, task_id).set_exception(InvalidInputError(f"rejected: {error}"))

    def refuse(self, slot: _Slot, task_id: str, reason: str) -> None:
        """The client could not do task ``task_id`` (its code raised): a failure."""
        self.expect(slot, task_id).set_exception(RuntimeError(reason[:500]))

    def lost(self, name: str, reason: str, *, gone: bool = False) -> None:
        """Client ``name`` is lost (silent too long; with ``gone``, its process ended and
        it will not come back): fail its open task now."""
        slot = self.clients.pop(name, None)
        if slot is not None:
            log.warning("client %s dropped: %s", name, reason)
            self._fail(slot, reason)
        if gone:
            self.gone.add(name)
            task = asyncio.get_running_loop().create_task(self._notify())  # fewer to wait for
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _notify(self) -> None:
        async with self._joined:
            self._joined.notify_all()

    @contextlib.contextmanager
    def busy(self, slot: _Slot) -> Iterator[None]:
        """The client is talking to the server (a long upload): not stale meanwhile."""
        slot.polling += 1
        try:
            yield
        finally:
            slot.polling -= 1
            slot.last_seen = time.monotonic()

    # -- the rounds ------------------------------------------------------------------
    async def run(self) -> list[RoundRecord]:
        """Run every round; returns the history. Raises when clients never came."""
        reaper = asyncio.create_task(self._reap())
        try:
            return await self._run()
        finally:
            reaper.cancel()

    async def _run(self) -> list[RoundRecord]:
        strategy = self.strategy
        await self._wait_for(strategy.min_available_clients)
        if self.weights_now is None:
            self.weights_now = await self._initial_weights()
        if self.start_round == 1:
            strategy.initialize(self.weights_now)
        await self._publish(self.weights_now)
        if self.start_round == 1:
            self.initial_central = await self._central(0)
        if self.observer is not None:
            await asyncio.to_thread(self.observer.started, self)
        for server_round in range(self.start_round, self.settings.rounds + 1):
            reason = strategy.stop_reason(server_round)
            if reason is not None:
                self.stopped = reason
                log.info("stopping before round %d: %s", server_round, reason)
                break
            record = await self._round(server_round)
            self.history.append(record)
            if self.observer is not None:
                await asyncio.to_thread(self.observer.round_done, record, self.weights_now,
                                        self)
        self._finish()
        return self.history

    async def _round(self, server_round: int) -> RoundRecord:
        started = time.perf_counter()
        self._bytes_up = self._bytes_down = 0
        await self._wait_for(self.strategy.min_available_clients)
        available = sorted(self.clients)
        rng = np.random.default_rng([self.settings.seed, server_round])
        chosen = self.strategy.sample(available, self.strategy.num_fit(len(available)), rng)
        current = self.weights_now
        assert current is not None
        if self.settings.secure is not None:
            new, answered, failures = await self.settings.secure.round(self, server_round,
                                                                       chosen)
        else:
            new, answered, failures = await self._plain_round(server_round, chosen, current)
        if new is not None:
            self.weights_now = new
            self.version = server_round
            await self._publish(new)
        record = RoundRecord(server_round, chosen, answered, failures)
        record.federated = await self._federated_evaluation(server_round, available, rng)
        record.central = await self._central(server_round)
        record.strategy = dict(self.strategy.round_metrics())
        record.bytes_up, record.bytes_down = self._bytes_up, self._bytes_down
        record.seconds = time.perf_counter() - started
        return record

    async def _plain_round(self, server_round: int, chosen: list[str], current: Weights
                           ) -> tuple[Weights | None, list[str], list[Failure]]:
        config = self.fit_config(server_round)
        answered, failures = await self.ask(chosen, TaskKind.FIT, server_round, config)
        updates = [Update(name, delta, examples, metrics)
                   for name, (delta, examples, metrics) in sorted(answered.items())]
        if not updates:
            log.warning("round %d: no client update arrived; the model stays", server_round)
            return None, [], failures
        try:
            new = await asyncio.to_thread(self.strategy.aggregate, server_round, current,
                                          updates)
        except Exception as exc:  # e.g. Krum with fewer updates than it needs
            log.warning("round %d: aggregation failed (%s: %s); the model stays",
                        server_round, type(exc).__name__, exc)
            return None, [], [*failures, Failure("*", f"aggregation refused: {exc}")]
        return new, [u.client for u in updates], failures

    def fit_config(self, server_round: int) -> dict[str, Any]:
        """The config of a fit task: the round, the strategy's params and how the client
        runtime must treat its update (clipping, noise, weighting)."""
        config: dict[str, Any] = {"round": server_round}
        config.update(self.strategy.fit_config(server_round))
        return {"config": config, "update": self.strategy.client_update(),
                "float32": self.settings.float32}

    async def _federated_evaluation(self, server_round: int, available: list[str],
                                    rng: np.random.Generator) -> dict[str, float]:
        k = self.strategy.num_evaluate(len(available))
        if k == 0:
            return {}
        chosen = self.strategy.sample(available, k, rng)
        answered, _failed = await self.ask(chosen, TaskKind.EVALUATE, server_round,
                                           {"config": {"round": server_round}})
        results = [EvalResult(name, loss, examples, metrics)
                   for name, (loss, examples, metrics) in sorted(answered.items())]
        return self.strategy.aggregate_evaluate(server_round, results) if results else {}

    async def _central(self, server_round: int) -> dict[str, float]:
        if self.evaluate_fn is None or self.weights_now is None:
            return {}
        out = await asyncio.to_thread(self.evaluate_fn, server_round, self.weights_now)
        if out is None:
            return {}
        loss, metrics = out
        numbers = {"loss": float(loss)}
        numbers.update({k: float(v) for k, v in (metrics or {}).items()
                        if isinstance(v, int | float) and not isinstance(v, bool)})
        return numbers

    async def ask(self, names: Sequence[str], kind: TaskKind, server_round: int,
                  body: dict[str, Any], *, per_client: dict[str, dict[str, Any]] | None = None,
                  timeout: float | None = None, parse: answers.Parser | None = None
                  ) -> tuple[dict[str, Any], list[Failure]]:
        """Give each of ``names`` a task and wait for the answers (up to ``timeout``, by
        default the round timeout): (answers by client, parsed by ``parse`` — by default
        the kind's parser of :mod:`.answers` — and failures)."""
        loop = asyncio.get_running_loop()
        parse = parse or self._parser(kind)
        futures: dict[str, asyncio.Future[Any]] = {}
        failures: list[Failure] = []
        for name in names:
            slot = self.clients.get(name)
            if slot is None:
                failures.append(Failure(name, "disconnected before the task"))
                continue
            task = {"kind": kind.value, "round": server_round, "version": self.version,
                    **body, **((per_client or {}).get(name, {}))}
            if kind in (TaskKind.FIT, TaskKind.EVALUATE):
                task.update(self._inline())
            futures[name] = loop.create_future()
            self._give(slot, task, futures[name], parse)
        if futures:
            await asyncio.wait(futures.values(), timeout=timeout or self.settings.round_timeout)
        answered: dict[str, Any] = {}
        for name, future in futures.items():
            if not future.done():
                future.cancel()
                failures.append(Failure(name, f"no answer within "
                                              f"{timeout or self.settings.round_timeout:g} s"))
            elif future.cancelled():
                failures.append(Failure(name, "cancelled"))
            elif future.exception() is not None:
                failures.append(Failure(name, str(future.exception())))
            else:
                answered[name] = future.result()
        for name, future in futures.items():
            slot = self.clients.get(name)
            if slot is not None and slot.future is future:
                slot.future = None  # a late answer gets 409
        return answered, failures

    # -- internals -----------------------------------------------------------------
    def _parser(self, kind: TaskKind) -> answers.Parser | None:
        if kind is TaskKind.FIT:
            assert self.weights_now is not None
            return answers.fit_parser(self.weights_now)
        return {TaskKind.EVALUATE: answers.evaluate, TaskKind.INIT: answers.initial,
                TaskKind.SECAGG: answers.secagg}.get(kind)

    def _give(self, slot: _Slot, task: dict[str, Any],
              future: asyncio.Future[Any] | None = None,
              parse: answers.Parser | None = None) -> None:
        self._seq += 1
        task["task"] = f"{self._seq}-{task['kind']}"
        slot.task, slot.future, slot.parse = task, future, parse
        slot.wake.set()

    def _fail(self, slot: _Slot, reason: str) -> None:
        if slot.future is not None and not slot.future.done():
            slot.future.set_exception(ConnectionError(reason))
        slot.future = None
        slot.wake.set()

    async def _publish(self, weights: Weights) -> None:
        blob = await asyncio.to_thread(arrays.encode, weights, float32=self.settings.float32)
        self._blobs = {self.version: blob}
        self._inline_b64 = base64.b64encode(blob).decode() if len(blob) <= INLINE_MAX else None

    def _inline(self) -> dict[str, Any]:
        """A small model's weights ride in the task itself: one request a round less."""
        if self._inline_b64 is None:
            return {}
        self._bytes_down += len(self._inline_b64) * 3 // 4
        return {"weights": self._inline_b64}

    async def _reap(self) -> None:
        """Drop clients not heard from in ``stale_after`` seconds (a site that crashed
        without a word must not hold every later round to its timeout)."""
        every = min(5.0, self.settings.stale_after / 3)
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            for slot in list(self.clients.values()):
                if slot.polling == 0 and now - slot.last_seen > self.settings.stale_after:
                    self.lost(slot.name, f"not heard from in {self.settings.stale_after:g} s")

    def _need(self, n: int) -> int:
        """``n``, less the simulation's clients that are gone and will not come back."""
        population = self.settings.population
        need = n if population is None else min(n, population - len(self.gone))
        if need < 1:
            raise ServiceUnavailableError("every client of the simulation has ended")
        return need

    async def _wait_for(self, n: int) -> None:
        if len(self.clients) >= self._need(n):
            return
        log.info("waiting for %d clients (%d connected)", self._need(n), len(self.clients))
        try:
            async with self._joined:
                await asyncio.wait_for(
                    self._joined.wait_for(lambda: len(self.clients) >= self._need(n)),
                    self.settings.wait_timeout)
        except TimeoutError:
            raise ServiceUnavailableError(
                f"only {len(self.clients)} of the {self._need(n)} clients this federation "
                f"needs (min_available_clients) connected within "
                f"{self.settings.wait_timeout:g} s; start more clients or lower --min-clients"
                ) from None

    async def _initial_weights(self) -> Weights:
        for name in sorted(self.clients):
            answered, failures = await self.ask([name], TaskKind.INIT, 0, {})
            if name in answered:
                return list(answered[name])
            log.warning("client %s gave no initial weights: %s", name,
                        failures[0].reason if failures else "?")
        raise ServiceUnavailableError("no client gave initial weights; pass initial_weights "
                                      "or check the clients' get_weights()")

    def _finish(self) -> None:
        """Training is over (or failed): every client's next task is ``done``."""
        self.finished = True
        for slot in self.clients.values():
            self._give(slot, {"kind": TaskKind.DONE.value})


async def run_with(coordinator: Coordinator, serve: Callable[[], Coroutine[Any, Any, None]],
                   stop: Callable[[], None], linger: float = 2.0) -> list[RoundRecord]:
    """Serve and run the rounds together; after the last round, give clients ``linger``
    seconds to fetch their ``done`` task, then stop serving."""
    server = asyncio.create_task(serve())
    runner = asyncio.create_task(coordinator.run())
    try:
        try:
            await asyncio.wait({server, runner}, return_when=asyncio.FIRST_COMPLETED)
            if not runner.done():  # the server ended first: it could not start, or failed
                runner.cancel()
                server.result()
                raise ServiceUnavailableError("the federation server stopped serving")
            history = runner.result()
        except BaseException:
            runner.cancel()
            coordinator._finish()  # the clients stop instead of retrying a dead server
            raise
        deadline = time.monotonic() + linger
        while time.monotonic() < deadline and any(
                s.task is not None and s.fetched != s.task["task"]
                for s in coordinator.clients.values()):
            await asyncio.sleep(0.02)
        return history
    finally:
        stop()
        if not server.cancelled():
            with contextlib.suppress(Exception):
                await server


__all__ = ["Coordinator", "EvaluateFn", "Observer", "RoundRecord", "Settings", "run_with"]
