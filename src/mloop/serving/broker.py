"""Job brokers for model-on-demand serving: Redis Streams, or SQLite on one machine.

Both give the same contract, tested by one suite: at-least-once delivery (a claimed job
whose worker dies is claimed again after ``visibility`` seconds), idempotent results
(the first result written for a job id wins), retries with exponential backoff, and a
dead-letter list after ``max_attempts`` failures with the error kept.

* ``sqlite`` (the embedded default): a queue table in ``.mloop/queue.db``, claimed in
  ``BEGIN IMMEDIATE`` transactions, so processes on one machine share it.
* ``redis://host:6379/0``: a stream with a consumer group; stale pending entries are
  taken over with ``XAUTOCLAIM``; results are keys with an expiry, waited on with
  ``BLPOP``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mloop.core.ids import new_id
from mloop.core.redact import redact
from mloop.errors import (
    ConfigError,
    InvalidInputError,
    JobFailedError,
    NotFoundError,
    ServiceUnavailableError,
)

RESULT_TTL_S = 24 * 3600


@dataclass
class Job:
    id: str
    model: str
    payload: Any  # JSON-able rows
    attempts: int = 0
    token: str = ""  # broker bookkeeping (Redis stream entry id)


class JobHandle(str):
    """The id of a submitted job that also knows its broker.

    It *is* the id string (it prints, compares, hashes and serialises to JSON as the id),
    so code that stored ids keeps working; :func:`mloop.result` asks the broker it came
    from. Its ``repr`` hides a password in the broker URL.
    """

    broker: str

    def __new__(cls, job_id: str, broker: str) -> JobHandle:
        handle = super().__new__(cls, job_id)
        handle.broker = broker
        return handle

    def __repr__(self) -> str:
        return f"JobHandle({str.__repr__(self)}, broker={redact(self.broker)!r})"

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (JobHandle, (str(self), self.broker))


# the job ended in the dead-letter list (the name this module has always raised)
JobFailed = JobFailedError


class Broker(Protocol):
    def enqueue(self, model: str, payload: Any, job_id: str | None = None) -> str: ...

    def claim(self, model: str, consumer: str, count: int = 16,
              block_s: float = 1.0) -> list[Job]: ...

    def complete(self, job: Job, result: Any) -> None: ...

    def fail(self, job: Job, error: str) -> bool:
        """Record a failure; True when the job will be retried, False when dead-lettered."""
        ...

    def result(self, job_id: str, timeout: float = 30.0) -> Any: ...

    def dead_letters(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def broker_url(url: str | None, project_root: Path | None = None) -> str:
    """``url`` made self-contained: ``sqlite`` (the project's queue) becomes
    ``sqlite:///<project>/.mloop/queue.db``, so a job handle finds it from anywhere."""
    url = url or "sqlite"
    if url == "sqlite":
        if project_root is None:
            raise ConfigError("The sqlite broker lives in a project; run inside one, give "
                              "sqlite:///path/queue.db or redis://host:6379/0, or set "
                              "MLOOP_BROKER.")
        return f"sqlite:///{project_root / '.mloop' / 'queue.db'}"
    return url


def open_broker(url: str | None, project_root: Path | None = None, *,
                visibility: float = 30.0, max_attempts: int = 3,
                backoff: float = 0.5) -> Broker:
    """``sqlite`` (default, in the project), ``sqlite:///path/queue.db`` or ``redis://…``."""
    url = broker_url(url, project_root)
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        return SqliteBroker(path, visibility=visibility, max_attempts=max_attempts,
                            backoff=backoff)
    if url.startswith(("redis://", "rediss://")):
        return RedisBroker(url, visibility=visibility, max_attempts=max_attempts,
                           backoff=backoff)
    raise ConfigError(f"Unknown broker {url!r}; use sqlite, sqlite:///path or redis://host:6379/0.")


class SqliteBroker:
    def __init__(self, path: Path, *, visibility: float, max_attempts: int,
                 backoff: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.visibility, self.max_attempts, self.backoff = visibility, max_attempts, backoff
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("""CREATE TABLE IF NOT EXISTS jobs (
                id TEXT PRIMARY KEY, model TEXT NOT NULL, payload TEXT NOT NULL,
                status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                available_at REAL NOT NULL, claimed_at REAL, consumer TEXT,
                result TEXT, error TEXT, created_at REAL NOT NULL)""")
            conn.execute("CREATE INDEX IF NOT EXISTS ix_jobs_claim ON jobs (model, status, "
                         "available_at)")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def enqueue(self, model: str, payload: Any, job_id: str | None = None) -> str:
        job_id = job_id or new_id()  # time-ordered: feedback finds its log by it
        now = time.time()
        self._conn().execute(
            "INSERT OR IGNORE INTO jobs (id, model, payload, status, available_at, created_at)"
            " VALUES (?, ?, ?, 'queued', ?, ?)", (job_id, model, json.dumps(payload), now, now))
        return job_id

    def claim(self, model: str, consumer: str, count: int = 16,
              block_s: float = 1.0) -> list[Job]:
        """Up to ``count`` jobs for ``model``, waiting up to ``block_s`` for the first."""
        deadline = time.monotonic() + block_s
        while True:
            jobs = self._claim_once(model, consumer, count)
            if jobs or time.monotonic() >= deadline:
                return jobs
            time.sleep(0.02)

    def _claim_once(self, model: str, consumer: str, count: int) -> list[Job]:
        conn = self._conn()
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                "SELECT id, model, payload, attempts FROM jobs WHERE model = ? AND "
                "((status = 'queued' AND available_at <= ?) OR "
                "(status = 'claimed' AND claimed_at <= ?)) ORDER BY available_at LIMIT ?",
                (model, now, now - self.visibility, count)).fetchall()
            conn.executemany(
                "UPDATE jobs SET status = 'claimed', claimed_at = ?, consumer = ?, "
                "attempts = attempts + 1 WHERE id = ?", [(now, consumer, r[0]) for r in rows])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return [Job(r[0], r[1], json.loads(r[2]), r[3] + 1) for r in rows]

    def complete(self, job: Job, result: Any) -> None:
        # the first result wins: a job run twice (after a takeover) keeps one answer
        self._conn().execute(
            "UPDATE jobs SET status = 'done', result = COALESCE(result, ?) WHERE id = ?",
            (json.dumps(result), job.id))

    def fail(self, job: Job, error: str) -> bool:
        retry = job.attempts < self.max_attempts
        when = time.time() + self.backoff * 2 ** (job.attempts - 1)
        self._conn().execute(
            "UPDATE jobs SET status = ?, available_at = ?, error = ?, claimed_at = NULL "
            "WHERE id = ? AND status != 'done'",
            ("queued" if retry else "dead", when, error, job.id))
        return retry

    def result(self, job_id: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            row = self._conn().execute("SELECT status, result, error FROM jobs WHERE id = ?",
                                       (job_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"No job {job_id!r} in {self.path}.")
            if row[0] == "done":
                return json.loads(row[1])
            if row[0] == "dead":
                raise JobFailed(f"Job {job_id} failed for good: {row[2]}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Job {job_id} has no result after {timeout} s.")
            time.sleep(0.02)

    def dead_letters(self) -> list[dict[str, Any]]:
        rows = self._conn().execute("SELECT id, model, attempts, error FROM jobs WHERE "
                                    "status = 'dead' ORDER BY created_at").fetchall()
        return [{"id": r[0], "model": r[1], "attempts": r[2], "error": r[3]} for r in rows]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


@contextlib.contextmanager
def _network(url: str) -> Iterator[None]:
    """Redis connection trouble as the built-in ConnectionError (workers retry on it)."""
    import redis

    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise ConnectionError(f"Redis at {url}: {exc}") from exc


class RedisBroker:
    GROUP, DEAD = "mloop-workers", "mloop:dead"

    @staticmethod
    def stream(model: str) -> str:
        return f"mloop:jobs:{model}"

    def __init__(self, url: str, *, visibility: float, max_attempts: int,
                 backoff: float) -> None:
        try:
            import redis
        except ImportError:
            raise ConfigError("The Redis broker needs the redis package: pip install "
                              "'mloop[redis]'.") from None
        self.visibility, self.max_attempts, self.backoff = visibility, max_attempts, backoff
        self.url = url
        self.r: Any = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5,
                                      retry_on_timeout=True, health_check_interval=30)
        try:
            self.r.ping()
        except redis.exceptions.ConnectionError as exc:
            raise ServiceUnavailableError(f"Cannot reach the Redis broker at {url}: "
                                          f"{str(exc).rstrip('.')}. Is it running?") from exc
        self._groups: set[str] = set()

    def _group(self, stream: str) -> None:
        import redis

        if stream in self._groups:
            return
        try:
            self.r.xgroup_create(stream, self.GROUP, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(stream)

    def enqueue(self, model: str, payload: Any, job_id: str | None = None) -> str:
        job_id = job_id or new_id()  # time-ordered: feedback finds its log by it
        self._add(Job(job_id, model, payload, 0))
        return job_id

    def _add(self, job: Job, not_before: float = 0.0) -> None:
        with _network(self.url):
            stream = self.stream(job.model)
            self._group(stream)
            self.r.xadd(stream, {"id": job.id, "model": job.model,
                                      "payload": json.dumps(job.payload),
                                      "attempts": job.attempts, "not_before": not_before})

    def claim(self, model: str, consumer: str, count: int = 16,
              block_s: float = 1.0) -> list[Job]:
        with _network(self.url):
            stream = self.stream(model)
            self._group(stream)
            deadline = time.monotonic() + block_s
            while True:
                jobs, deferred = self._claim_once(stream, consumer, count,
                                                  max(0.001, deadline - time.monotonic()))
                if jobs or time.monotonic() >= deadline:
                    return jobs
                if deferred:  # only retries still in their backoff: look again shortly
                    time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _claim_once(self, stream: str, consumer: str, count: int,
                    block_s: float) -> tuple[list[Job], int]:
        entries: list[tuple[bytes, dict[bytes, bytes]]] = []
        # first, jobs whose worker went quiet for longer than the visibility timeout
        taken = self.r.xautoclaim(stream, self.GROUP, consumer,
                                  min_idle_time=int(self.visibility * 1000), start_id="0-0",
                                  count=count)
        entries += [e for e in taken[1] if e[1]]
        deliveries: dict[bytes, int] = {}
        for token, _ in entries:  # taken over: the stream counts the deliveries so far
            info = self.r.xpending_range(stream, self.GROUP, min=token, max=token, count=1)
            deliveries[token] = int(info[0]["times_delivered"]) if info else 1
        if not entries:
            got = self.r.xreadgroup(self.GROUP, consumer, {stream: ">"}, count=count,
                                    block=max(1, int(block_s * 1000)))
            entries += [e for _, items in (got or []) for e in items]
        jobs, deferred, now = [], 0, time.time()
        for token, fields in entries:
            f = {k.decode(): v.decode() for k, v in fields.items()}
            job = Job(f["id"], f["model"], json.loads(f["payload"]),
                      int(f["attempts"]) + deliveries.get(token, 1), token.decode())
            if float(f.get("not_before", 0)) > now:  # a retry whose backoff has not passed
                self.r.xack(stream, self.GROUP, token)
                self.r.xdel(stream, token)
                self._add(Job(job.id, job.model, job.payload, job.attempts - 1),
                          float(f["not_before"]))
                deferred += 1
                continue
            jobs.append(job)
        return jobs, deferred

    def _done(self, job: Job) -> None:
        stream = self.stream(job.model)
        self.r.xack(stream, self.GROUP, job.token)
        self.r.xdel(stream, job.token)

    def complete(self, job: Job, result: Any) -> None:
        key = f"mloop:result:{job.id}"
        if self.r.set(key, json.dumps({"result": result}), nx=True, ex=RESULT_TTL_S):
            self.r.rpush(f"mloop:done:{job.id}", 1)
            self.r.expire(f"mloop:done:{job.id}", RESULT_TTL_S)
        self._done(job)

    def fail(self, job: Job, error: str) -> bool:
        with _network(self.url):
            retry = job.attempts < self.max_attempts
            self._done(job)
            if retry:
                self._add(Job(job.id, job.model, job.payload, job.attempts),
                          time.time() + self.backoff * 2 ** (job.attempts - 1))
            else:
                self.r.xadd(self.DEAD, {"id": job.id, "model": job.model, "error": error,
                                        "attempts": job.attempts})
                self.r.set(f"mloop:result:{job.id}", json.dumps({"error": error}), nx=True,
                           ex=RESULT_TTL_S)
                self.r.rpush(f"mloop:done:{job.id}", 1)
                self.r.expire(f"mloop:done:{job.id}", RESULT_TTL_S)
            return retry

    def result(self, job_id: str, timeout: float = 30.0) -> Any:
        with _network(self.url):
            raw = self.r.get(f"mloop:result:{job_id}")
            if raw is None and self.r.blpop([f"mloop:done:{job_id}"], timeout=max(1, int(timeout))):
                self.r.rpush(f"mloop:done:{job_id}", 1)  # leave the signal for other waiters
                raw = self.r.get(f"mloop:result:{job_id}")
            if raw is None:
                raise TimeoutError(f"Job {job_id} has no result after {timeout} s.")
            body = json.loads(raw)
            if "error" in body:
                raise JobFailed(f"Job {job_id} failed for good: {body['error']}")
            return body["result"]

    def dead_letters(self) -> list[dict[str, Any]]:
        with _network(self.url):
            return [{k.decode(): v.decode() for k, v in fields.items()}
                    for _, fields in self.r.xrange(self.DEAD)]

    def close(self) -> None:
        with _network(self.url):
            self.r.close()


def check_payload(payload: Any) -> Any:
    if not isinstance(payload, list | dict) or not payload:
        raise InvalidInputError("Submit rows as a non-empty list of records (or a dict of "
                                "columns).")
    return payload
