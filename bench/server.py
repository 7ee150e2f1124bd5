"""The team server (``mloop server``): mloop's own client through it, the mlflow client
against it, the mlflow server and a do-nothing server, and a search over 100,000 runs.

Every server is a real subprocess (uvicorn, one worker) on a random 127.0.0.1 port, so
the client (this process) and the server never share a GIL; ``--pin`` also pins the
servers to core 0 and this process to core 1 (on a machine shared with other work,
pinning makes each wait for its one core, so it is off by default). All stores are
SQLite on the same disk.

(1) **mloop's client through the server.** ``MLOOP_STORE_URI=http://…`` and ``MLOOP_TOKEN``
    (an admin token made with ``mloop.server.tokens.create`` on the server's project): N
    ``mloop.log_metric`` calls in one run, each timed as the training loop sees it (the
    points are buffered and sent in batches by a background thread), then ``flush()``.
    Printed: p50 and p99 per call (goal p50 ≤ 0.05 ms) and the time from the first call
    until ``flush()`` returns, when the server has committed every point (goal ≤ 1 s for
    10,000 points); the points are then read back through the server and counted. One
    warm-up run, then the median of ``--repeat`` runs.
(2) **The mlflow client**, the real one (``mlflow.log_metric`` and friends), against
    (a) ``mloop server``, (b) ``mlflow server`` (its own SQLite backend store, ``--workers
    1``, artifacts served by it, its job runner off — the huey consumers it starts by
    default for GenAI jobs burn CPU the other servers would miss: its leanest
    configuration) and (c) a do-nothing server: the same FastAPI + uvicorn stack answering
    canned replies to exactly the endpoints the workflow calls (:func:`null_app`: each
    request's body is received, nothing is parsed; its search reply is the bytes mloop
    server answered to the same search, so the client parses the same runs). The workflow: 1,000
    ``log_metric`` calls in one run, 200 runs created (``start_run``/``end_run``), and
    ``search_runs`` with a filter and an order by a metric over an experiment of 2,000
    runs with 5 params and 5 metrics each (made beforehand: on mloop's store through its
    SQL path, on mlflow's with ``MlflowClient`` on its database, before the servers
    start). One small warm-up workflow per server, then ``--rounds`` rounds interleaved
    (a, b, c, a, b, c, …); printed: per-operation medians, the ratios mloop server ÷
    do-nothing (goal ≤ 1.3×) and mlflow server ÷ mloop server (goal ≥ 3×), the requests
    each operation sent (counted by the do-nothing server), and each server's own CPU per
    operation (its process group's user + system time from /proc: steadier than wall
    time on a machine shared with other work).
(3) **Read path.** A second ``mloop server`` over a store of ``--big-runs`` runs (100,000;
    written before it starts, in transactions of a few thousand runs), searched through
    mloop's HTTP client: ``mloop.search_runs(order_by=["metrics.acc DESC"],
    max_results=100)`` (the first page), with and without a filter, median of 7 after a
    warm-up; the same search in-process on the server's store (what the database costs)
    and through the mlflow client (``MlflowClient.search_runs(max_results=100)``).
    Goal: the first page < 100 ms.

The write rate limit of ``mloop server`` (``server_rate_limit``, 200 writes/s per token by
default) is raised for the benchmark with MLOOP_SERVER_RATE_LIMIT: the mlflow client
sends one request per ``log_metric`` and would otherwise be throttled, which measures
the policy, not the server.

Usage: python bench/server.py [--smoke] [--no-peer] [--points 10000] [--repeat 5]
                              [--rounds 5] [--big-runs 100000] [--profile DIR]
``--no-peer`` skips the mlflow server (b); the do-nothing server always runs.
``--profile DIR`` records each mloop server with py-spy (``pip install py-spy``) into
DIR/<name>.txt (collapsed stacks; open with speedscope or flamegraph.pl).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Request  # module level: FastAPI resolves the handlers' annotations here

# the script's folder is on sys.path: the serving benchmark's helpers
from serving import free_port, wait_ready

FILTER = "metrics.acc > 0.9 and params.model = 'logreg'"
ORDER = ["metrics.acc DESC"]
API = "/api/2.0/mlflow"
SEARCH_EXPERIMENT = "bench-search"
BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve()
SERVER_CORE, CLIENT_CORE = 0, 1
PINNED = False  # --pin


def run_values(i: int, rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, float]]:
    """The params and metrics of run ``i`` (as bench/tracking.py makes them)."""
    params = {"model": ("logreg", "rf", "svm")[i % 3], "C": float(rng.choice([0.1, 1.0, 10.0])),
              "max_iter": 100 + i % 7, "penalty": ("l1", "l2")[i % 2], "seed": i}
    acc = float(rng.uniform(0.5, 1.0))
    metrics = {"acc": acc, "f1": acc * 0.95, "loss": 1 - acc, "auc": min(1.0, acc + 0.02),
               "recall": acc * 0.9}
    return params, metrics


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms" if seconds < 0.01 else f"{seconds * 1000:.1f} ms"


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def pin(pid: int, core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {core})


def group_cpu(pgid: int) -> float:
    """User + system CPU seconds of every process in a process group (Linux /proc)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


# ── servers ──────────────────────────────────────────────────────────────────────────────

class Server:
    """A server subprocess on 127.0.0.1, pinned to the server core, stopped on exit."""

    def __init__(self, name: str, argv: list[str], ready: str, log: Path, *,
                 env: dict[str, str] | None = None, cwd: Path | None = None,
                 profile: Path | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        full_env = dict(os.environ, **(env or {}))
        full_env.pop("MLOOP_STORE_URI", None)
        full_env.pop("MLOOP_TOKEN", None)
        self.proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=subprocess.DEVNULL,
                                     stderr=log.open("w"), start_new_session=True)
        if PINNED:
            pin(self.proc.pid, SERVER_CORE)
        self.spy: subprocess.Popen[bytes] | None = None
        try:
            self.cold = wait_ready(self.url + ready, self.proc)
        except SystemExit:
            print(log.read_text()[-3000:])
            self.close()
            raise
        if profile is not None:
            self.spy = subprocess.Popen(
                [str(BIN / "py-spy"), "record", "-f", "raw", "-r", "200", "-o",
                 str(profile / f"{name}.txt"), "-p", str(self.proc.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cpu(self) -> float:
        """CPU seconds the server (its whole process group) has used so far."""
        return group_cpu(self.proc.pid)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.spy is not None and self.spy.poll() is None:
            self.spy.send_signal(2)  # py-spy writes its file on SIGINT
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.spy.wait(timeout=30)
        # the server's own process group: mlflow server's uvicorn and job runners too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


SERVER_ENV = {
    # the benchmark measures the server, not the write-rate policy (see the docstring)
    "MLOOP_SERVER_RATE_LIMIT": "1000000", "MLOOP_SERVER_RATE_BURST": "1000000",
}


def mloop_server(root: Path, name: str, profile: Path | None) -> Server:
    return Server(name, [sys.executable, "-m", "mloop", "server", "--root", str(root),
                         "--port", "{port}"], "/api/v1/server-info", root.parent / f"{name}.log",
                  env=SERVER_ENV, cwd=root, profile=profile)


# mlflow server starts a job runner (huey consumers for GenAI scorers and periodic tasks)
# by default: off, as it has nothing to do with tracking and would take CPU from the others
MLFLOW_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
              "MLFLOW_SERVER_JOB_ENABLE_PERIODIC_TASKS": "false"}


def mlflow_server(root: Path) -> Server:
    return Server("mlflow", [str(BIN / "mlflow"), "server", "--backend-store-uri",
                             f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination",
                             str(root / "artifacts"), "--host", "127.0.0.1", "--port",
                             "{port}", "--workers", "1"], "/health",
                  root.parent / "mlflow.log", cwd=root, env=MLFLOW_ENV)


def null_server(base: Path, canned: dict[str, Any]) -> Server:
    path = base / "canned.json"
    path.write_text(json.dumps(canned))
    return Server("do-nothing", [sys.executable, str(HERE), "--serve-null", str(path),
                                 "--port", "{port}"], "/health", base / "null.log", cwd=base)


# ── (c) the do-nothing server ────────────────────────────────────────────────────────────

def null_app(canned: dict[str, Any]) -> Any:
    """FastAPI answering canned replies to the endpoints the workflow calls, and counting
    the requests (``GET /bench/calls``); anything else is a 404 it also counts."""
    from collections import Counter

    from fastapi import FastAPI
    from fastapi.responses import Response

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    calls: Counter[str] = Counter()
    ids = iter(range(1, 1 << 62))
    experiment = json.dumps({"experiment": {
        "experiment_id": "1", "name": "bench", "artifact_location": "mlflow-artifacts:/1",
        "lifecycle_stage": "active", "creation_time": 0, "last_update_time": 0}}).encode()
    info = {"run_id": "RUNID", "run_uuid": "RUNID", "run_name": "bench",
            "experiment_id": "1", "user_id": "bench", "status": "RUNNING",
            "start_time": 1, "artifact_uri": "mlflow-artifacts:/1/RUNID/artifacts",
            "lifecycle_stage": "active"}
    created = json.dumps({"run": {"info": info, "data": {"tags": [
        {"key": "mlflow.runName", "value": "bench"}]}, "inputs": {}}}).encode()
    fetched = json.dumps({"run": {"info": dict(info, status="FINISHED", end_time=2),
                                  "data": {"tags": [{"key": "mlflow.runName",
                                                     "value": "bench"}]}, "inputs": {}}})
    fetched_bytes = fetched.encode()
    updated = json.dumps({"run_info": dict(info, status="FINISHED", end_time=2)}).encode()
    searched = canned["search"].encode()

    def answer(body: bytes) -> Response:
        return Response(body, media_type="application/json")

    def route(method: str, path: str, reply: Callable[[], bytes]) -> None:
        key = f"{method} {path}"

        async def endpoint(request: Request) -> Response:
            await request.body()  # received, as any server must, but not even parsed
            calls[key] += 1
            return answer(reply())

        app.add_api_route(API + path, endpoint, methods=[method])

    route("GET", "/experiments/get-by-name", lambda: experiment)
    route("GET", "/experiments/get", lambda: experiment)
    route("POST", "/experiments/create", lambda: b'{"experiment_id": "1"}')
    route("POST", "/runs/create", lambda: created.replace(b"RUNID", b"%032x" % next(ids)))
    route("POST", "/runs/update", lambda: updated)
    route("GET", "/runs/get", lambda: fetched_bytes)
    route("POST", "/runs/log-metric", lambda: b"{}")
    route("POST", "/runs/search", lambda: searched)

    @app.get("/health")
    async def health() -> Response:
        return Response(b"OK")

    @app.get("/bench/calls")
    async def counted() -> dict[str, int]:
        return dict(calls)

    @app.api_route("/{rest:path}", methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
    async def unknown(request: Request) -> Response:
        calls[f"UNSERVED {request.method} {request.url.path}"] += 1
        return Response(b'{"error_code": "ENDPOINT_NOT_FOUND", "message": "do-nothing"}',
                        status_code=404, media_type="application/json")

    return app


def serve_null(canned_path: str, port: int) -> int:
    import uvicorn

    canned = json.loads(Path(canned_path).read_text())
    uvicorn.run(null_app(canned), host="127.0.0.1", port=port, log_level="warning",
                access_log=False, timeout_keep_alive=30)
    return 0


# ── stores, filled before their servers start ───────────────────────────────────────────

def seed_mloop(project: Any, experiment: str, count: int, seed: int = 0,
               chunk: int = 5000) -> float:
    """``count`` finished runs with 5 params and 5 metrics in ``experiment``, written
    through the runs repository's in-transaction statements, ``chunk`` runs a transaction
    (the fluent API would take minutes for 100,000). Returns the seconds it took."""
    from mloop.core.clock import now_ms
    from mloop.core.ids import new_id
    from mloop.core.owner import this_process
    from mloop.repositories.runs_sql import owner_values, write_points
    from mloop.store.schema import params as params_table
    from mloop.store.schema import runs as runs_table
    from mloop.store.schema import tags as tags_table
    from mloop.tracking.experiments import get_or_create_experiment

    start = time.perf_counter()
    exp = get_or_create_experiment(project, experiment)
    store = project.store
    rng = np.random.default_rng(seed)
    owner = owner_values(this_process(), now_ms())
    for first in range(0, count, chunk):
        run_rows, param_rows, tag_rows, points = [], [], [], []
        now = now_ms()
        for i in range(first, min(count, first + chunk)):
            values, metrics = run_values(i, rng)
            run_id = new_id()
            run_rows.append({
                "id": run_id, "experiment_id": exp.id, "name": f"run-{i}",
                "status": "FINISHED", "start_time": now + i, "end_time": now + i + 1,
                "parent_id": None, "user": "bench", "environment_id": None, "command": None,
                "git_commit": None, "git_branch": None, "git_dirty": None, "git_diff": None,
                "seed": None, **owner})
            param_rows += [{"run_id": run_id, "key": k, "value": str(v)}
                           for k, v in values.items()]
            tag_rows.append({"run_id": run_id, "key": "mlflow.runName", "value": f"run-{i}"})
            points += [(run_id, k, 0, now + i, v) for k, v in metrics.items()]
        with store.write() as conn:
            conn.execute(runs_table.insert(), run_rows)
            conn.execute(params_table.insert(), param_rows)
            conn.execute(tags_table.insert(), tag_rows)
            write_points(store, conn, points)
    return time.perf_counter() - start


def seed_mlflow(root: Path, count: int, seed: int = 0) -> tuple[str, float]:
    """The same runs in a fresh mlflow SQLite store, with ``MlflowClient`` on the database
    (no server yet): ``(experiment id, seconds)``."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    root.joinpath("artifacts").mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp_id = client.create_experiment(SEARCH_EXPERIMENT,
                                      artifact_location="mlflow-artifacts:/search")
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for i in range(count):
        values, metrics = run_values(i, rng)
        run = client.create_run(exp_id, run_name=f"run-{i}")
        now = int(time.time() * 1000)
        client.log_batch(run.info.run_id,
                         metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                         params=[Param(k, str(v)) for k, v in values.items()])
        client.set_terminated(run.info.run_id)
    return exp_id, time.perf_counter() - start


def server_project(root: Path) -> tuple[Any, str]:
    """A server's project folder and an admin token for it."""
    import mloop
    from mloop.server import tokens

    project = mloop.Project.init(root)  # its default store: SQLite in the folder
    token = tokens.create(project, "bench", "admin", created_by="bench")[0]
    return project, token


# ── (1) mloop's client through the server ───────────────────────────────────────────────

def mloop_points(url: str, token: str, base: Path, points: int, repeat: int
                 ) -> dict[str, Any]:
    """Per-call latencies and the time until durable, median over ``repeat`` runs."""
    import mloop
    from mloop.repositories import backend

    os.environ["MLOOP_TOKEN"] = token
    client = mloop.Project.init(base / "client", store_uri=url)
    mloop.set_project(client)
    results = []
    try:
        for attempt in range(repeat + 1):  # the first is the warm-up
            n = min(points, 1000) if attempt == 0 else points
            calls: list[int] = []
            gc.collect()
            with mloop.start_run(experiment="points") as run:
                clock = time.perf_counter_ns
                first = clock()
                for step in range(n):
                    t = clock()
                    mloop.log_metric("loss", 1.0 / (step + 1), step=step)
                    calls.append(clock() - t)
                mloop.flush()
                durable = (clock() - first) / 1e9
                run_id = run.id
            stored = len(backend(client).runs.metric_history(run_id, "loss"))
            if stored != n:
                raise SystemExit(f"the server holds {stored} points of {n}")
            if attempt:
                seconds = [c / 1e9 for c in calls]
                results.append({"p50": percentile(seconds, 50), "p99": percentile(seconds, 99),
                                "max": max(seconds), "durable": durable})
    finally:
        mloop.set_project(None)
        client.close()
    return {k: statistics.median(r[k] for r in results) for k in results[0]} | {
        "each": [r["durable"] for r in results]}


# ── (2) the mlflow client ────────────────────────────────────────────────────────────────

def use_server(mlflow: Any, url: str, token: str | None) -> None:
    if token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    else:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    mlflow.set_tracking_uri(url)


def workflow(mlflow: Any, cpu: Callable[[], float], search_id: str, metrics: int,
             runs: int, searches: int, tag: str) -> dict[str, Any]:
    """The mlflow workflow once: per-operation totals and per-call latencies (what the
    client prints, "View run … at", is kept in memory, not shown)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return _workflow(mlflow, cpu, search_id, metrics, runs, searches, tag)


def _workflow(mlflow: Any, cpu: Callable[[], float], search_id: str, metrics: int,
              runs: int, searches: int, tag: str) -> dict[str, Any]:
    clock = time.perf_counter
    out: dict[str, Any] = {}
    mlflow.set_experiment(f"wf-metrics-{tag}")
    with mlflow.start_run():
        used = cpu()
        each = []
        for step in range(metrics):
            t = clock()
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            each.append(clock() - t)
        out["log_metric_cpu"] = cpu() - used
    out["log_metric"], out["log_metric_each"] = sum(each), each
    mlflow.set_experiment(f"wf-runs-{tag}")
    each, used = [], cpu()
    for _ in range(runs):
        t = clock()
        mlflow.start_run()
        mlflow.end_run()
        each.append(clock() - t)
    out["runs"], out["runs_each"], out["runs_cpu"] = sum(each), each, cpu() - used
    each, found, used = [], 0, cpu()
    for _ in range(searches):
        t = clock()
        found = len(mlflow.search_runs(experiment_ids=[search_id], filter_string=FILTER,
                                       order_by=ORDER))
        each.append(clock() - t)
    out["search"], out["hits"] = statistics.median(each), found
    out["search_cpu"] = (cpu() - used) / searches
    return out


def null_calls(url: str) -> dict[str, int]:
    import httpx

    return dict(httpx.get(url + "/bench/calls").json())


def capture_search(url: str, token: str, search_id: str) -> str:
    """mloop server's answer to the workflow's search, as the mlflow client asks it."""
    import httpx

    body = {"experiment_ids": [search_id], "filter": FILTER, "run_view_type": "ACTIVE_ONLY",
            "max_results": 10000, "order_by": ORDER}  # the page the client asks
    reply = httpx.post(url + API + "/runs/search", json=body,
                       headers={"Authorization": f"Bearer {token}"}, timeout=60)
    reply.raise_for_status()
    return reply.text


def mlflow_part(servers: list[tuple[str, Server, str | None, str]], args: Any
                ) -> dict[str, dict[str, Any]]:
    """Warm-up, then ``args.rounds`` interleaved rounds of the workflow on every server."""
    import mlflow

    for noisy in ("mlflow", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in servers}
    for _name, server, token, search_id in servers:
        use_server(mlflow, server.url, token)
        workflow(mlflow, server.cpu, search_id, 50, 5, 1, "warm")
    for r in range(args.rounds):
        for name, server, token, search_id in servers:
            use_server(mlflow, server.url, token)
            gc.collect()
            rounds[name].append(workflow(mlflow, server.cpu, search_id, args.metric_calls,
                                         args.wf_runs, args.searches, str(r)))
    summary = {}
    for name, found in rounds.items():
        summary[name] = {
            "log_metric": statistics.median(f["log_metric"] for f in found),
            "log_metric_p50": statistics.median(percentile(f["log_metric_each"], 50)
                                                for f in found),
            "runs": statistics.median(f["runs"] for f in found),
            "runs_p50": statistics.median(percentile(f["runs_each"], 50) for f in found),
            "search": statistics.median(f["search"] for f in found),
            "hits": found[-1]["hits"],
            **{f"{op}_cpu": statistics.median(f[f"{op}_cpu"] for f in found)
               for op in ("log_metric", "runs", "search")},
        }
        summary[name]["total"] = (summary[name]["log_metric"] + summary[name]["runs"]
                                  + summary[name]["search"])
    return summary


# ── (3) the read path ────────────────────────────────────────────────────────────────────

def median_time(fn: Callable[[], Any], repeat: int, warm: int = 2) -> tuple[float, Any]:
    for _ in range(warm):
        fn()
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def read_path(base: Path, count: int, peer_client: bool, profile: Path | None
              ) -> dict[str, Any]:
    import mloop

    root = base / "big"
    root.mkdir()
    project, token = server_project(root)
    seconds = seed_mloop(project, "big", count, seed=1)
    print(f"    {count:,} runs written in {seconds:.1f} s ({count / seconds:,.0f} runs/s)")
    out: dict[str, Any] = {}
    page = {"experiment": "big", "order_by": ORDER, "max_results": 100}
    project.close()
    with mloop_server(root, "mloop-big", profile) as server:
        os.environ["MLOOP_TOKEN"] = token
        client = mloop.Project.init(base / "big-client", store_uri=server.url)
        try:
            out["http"], df = median_time(lambda: mloop.search_runs(project=client, **page), 7)
            out["http_filter"], _ = median_time(
                lambda: mloop.search_runs(project=client, filter=FILTER, **page), 7)
            out["rows"] = len(df)
        finally:
            client.close()
        # in-process on the same store (the server idle), after the server opened it
        local = mloop.Project.open(root)
        try:
            out["direct"], mine = median_time(
                lambda: mloop.search_runs(project=local, **page), 7)
            out["direct_filter"], _ = median_time(
                lambda: mloop.search_runs(project=local, filter=FILTER, **page), 7)
        finally:
            local.close()
        if list(mine["run_id"]) != list(df["run_id"]):
            raise SystemExit("the server's first page differs from the store's")
        if peer_client:
            from mlflow.tracking import MlflowClient

            os.environ["MLFLOW_TRACKING_TOKEN"] = token
            mc = MlflowClient(tracking_uri=server.url)
            exp_id = mc.get_experiment_by_name("big").experiment_id
            out["mlflow_client"], found = median_time(
                lambda: mc.search_runs([exp_id], order_by=ORDER, max_results=100), 7)
            out["mlflow_rows"] = len(found)
    return out


# ── driver ───────────────────────────────────────────────────────────────────────────────

def machine(pinned: bool) -> str:
    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    where = (f"servers pinned to core {SERVER_CORE}, clients to core {CLIENT_CORE}"
             if pinned else "not pinned (--pin pins servers and clients to two cores)")
    return (f"machine: {cores} cores ({usable} usable by this process), load average "
            f"{load} (1, 5, 15 min); {where}; Python {sys.version.split()[0]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument("--no-peer", action="store_true", help="skip the mlflow server")
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--metric-calls", type=int, default=1_000)
    parser.add_argument("--wf-runs", type=int, default=200)
    parser.add_argument("--search-runs", type=int, default=2_000)
    parser.add_argument("--searches", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--big-runs", type=int, default=100_000)
    parser.add_argument("--only", choices=("points", "mlflow", "read"), action="append",
                        help="run only these parts (repeatable)")
    parser.add_argument("--pin", action="store_true",
                        help="pin the servers to core 0 and this process to core 1")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record the mloop servers with py-spy into DIR")
    parser.add_argument("--serve-null", metavar="CANNED", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_null:
        return serve_null(args.serve_null, args.port)
    if args.smoke:
        args.points, args.repeat, args.metric_calls, args.wf_runs = 300, 1, 30, 5
        args.search_runs, args.searches, args.rounds, args.big_runs = 60, 1, 1, 500
    parts = set(args.only or ("points", "mlflow", "read"))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        args.profile = args.profile.resolve()
    try:
        import mlflow  # noqa: F401
        have_client = True
    except ImportError:
        have_client = False
        print("The mlflow client is not installed (pip install -e '.[bench]'): (2) skipped.")
    peer = have_client and not args.no_peer and shutil.which("mlflow", path=str(BIN))
    if have_client and not args.no_peer and not peer:
        print("The mlflow server is not installed (pip install mlflow): (b) skipped.")
    print(machine(args.pin))
    if args.pin:
        global PINNED
        PINNED = True
        pin(0, CLIENT_CORE)
    os.environ["MLOOP_CAPTURE_PACKAGES"] = "0"

    with tempfile.TemporaryDirectory(prefix="mloop-bench-server-") as tmp:
        base = Path(tmp)
        root = base / "mloop"
        root.mkdir()
        project, token = server_project(root)
        if "mlflow" in parts and have_client:
            seconds = seed_mloop(project, SEARCH_EXPERIMENT, args.search_runs)
            print(f"mloop store: {args.search_runs:,} runs written in {seconds:.2f} s")
        project.close()
        mlflow_root = base / "mlflow"
        mlflow_search = ""
        if peer and "mlflow" in parts:
            mlflow_root.mkdir()
            mlflow_search, seconds = seed_mlflow(mlflow_root, args.search_runs)
            print(f"mlflow store: {args.search_runs:,} runs written with MlflowClient in "
                  f"{seconds:.1f} s")

        with mloop_server(root, "mloop", args.profile) as server:
            print(f"mloop server ready in {server.cold:.2f} s")
            if "points" in parts:
                print(f"\n(1) {args.points:,} mloop.log_metric calls through mloop server "
                      f"(median of {args.repeat} runs after a warm-up)")
                p = mloop_points(server.url, token, base, args.points, args.repeat)
                print(f"    per call p50 {ms(p['p50'])}  (goal ≤ 0.05 ms: "
                      f"{verdict(p['p50'] <= 50e-6)}), p99 {ms(p['p99'])}, "
                      f"max {ms(p['max'])}")
                print(f"    first call → flush() returned (all {args.points:,} points "
                      f"committed on the server) {p['durable']:.3f} s  (goal ≤ 1 s: "
                      f"{verdict(p['durable'] <= 1.0)}); each run: "
                      + ", ".join(f"{d:.3f}" for d in p["each"]))
            if "mlflow" in parts and have_client:
                mlflow_part_run(base, server, token, mlflow_root, mlflow_search,
                                bool(peer), args)

        if "read" in parts:
            print(f"\n(3) runs search over {args.big_runs:,} runs through mloop server, "
                  f"first page of 100 ordered by {ORDER[0]} (median of 7)")
            r = read_path(base, args.big_runs, have_client, args.profile)
            print(f"    mloop.search_runs over HTTP            {ms(r['http'])}  (goal < 100 ms:"
                  f" {verdict(r['http'] < 0.1)}); {r['rows']} rows")
            print(f"    the same, filter {FILTER!r}  {ms(r['http_filter'])}  (goal < 100 ms: "
                  f"{verdict(r['http_filter'] < 0.1)})")
            print(f"    in-process on the server's store       {ms(r['direct'])}; with the "
                  f"filter {ms(r['direct_filter'])}")
            if "mlflow_client" in r:
                print(f"    MlflowClient.search_runs(max_results=100) {ms(r['mlflow_client'])}"
                      f"; {r['mlflow_rows']} runs")
    if args.profile:
        print(f"\npy-spy profiles in {args.profile}")
    return 0


def mlflow_part_run(base: Path, server: Server, token: str, mlflow_root: Path,
                    mlflow_search: str, peer: bool, args: Any) -> None:
    import httpx

    search_id = httpx.get(server.url + API + "/experiments/get-by-name",
                          params={"experiment_name": SEARCH_EXPERIMENT},
                          headers={"Authorization": f"Bearer {token}"}
                          ).json()["experiment"]["experiment_id"]
    canned = {"search": capture_search(server.url, token, search_id)}
    with contextlib.ExitStack() as stack:
        null = stack.enter_context(null_server(base, canned))
        servers = [("mloop server", server, token, search_id)]
        if peer:
            theirs = stack.enter_context(mlflow_server(mlflow_root))
            servers.append(("mlflow server", theirs, None, mlflow_search))
        servers.append(("do-nothing", null, None, "1"))
        print(f"\n(2) the mlflow client: {args.metric_calls:,} log_metric, "
              f"{args.wf_runs:,} runs (start_run/end_run), search_runs over "
              f"{args.search_runs:,} runs ({FILTER!r}, {ORDER[0]}); warm-up, then medians of "
              f"{args.rounds} interleaved rounds")
        before = null_calls(null.url)
        results = mlflow_part(servers, args)
        after = null_calls(null.url)
    hits = {name: r["hits"] for name, r in results.items()}
    if len(set(hits.values())) != 1:
        raise SystemExit(f"search hits differ: {hits}")
    unserved = [k for k in after if k.startswith("UNSERVED")]
    if unserved:
        raise SystemExit(f"the do-nothing server got requests it does not serve: {unserved}")
    per = args.rounds + 1  # rounds plus the warm-up
    spent = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    print("    requests sent (counted by the do-nothing server, all rounds and warm-up): "
          + ", ".join(f"{k} {v:,}" for k, v in sorted(spent.items())) + f" over {per} workflows")
    header = f"    {'':<16}{'log_metric total':>18}{'p50/call':>12}{'runs total':>14}" \
             f"{'p50/run':>12}{'search':>12}{'all three':>12}"
    print(header)
    for name, r in results.items():
        print(f"    {name:<16}{r['log_metric']:>16.3f} s{r['log_metric_p50'] * 1000:>9.2f} ms"
              f"{r['runs']:>12.3f} s{r['runs_p50'] * 1000:>9.2f} ms"
              f"{r['search'] * 1000:>9.1f} ms{r['total']:>10.3f} s")
    print("    the server's own CPU (its process group, /proc), medians: "
          "per log_metric call, per run created, per search")
    for name, r in results.items():
        print(f"    {name:<16}{r['log_metric_cpu'] / args.metric_calls * 1000:>9.3f} ms"
              f"{r['runs_cpu'] / args.wf_runs * 1000:>12.3f} ms"
              f"{r['search_cpu'] * 1000:>12.1f} ms")
    ours, floor = results["mloop server"], results["do-nothing"]
    print(f"    search hits: {hits['mloop server']} runs")
    print("    mloop server / do-nothing, wall time as the client sees it (goal ≤ 1.3×):")
    for op in ("log_metric", "runs", "search", "total"):
        ratio = ours[op] / floor[op]
        print(f"      {op:<12} {ratio:>6.2f}×  ({verdict(ratio <= 1.3)})")
    if "mlflow server" in results:
        theirs = results["mlflow server"]
        print("    mlflow server / mloop server, wall time (goal ≥ 3×); and the servers' "
              "own CPU:")
        for op in ("log_metric", "runs", "search", "total"):
            ratio = theirs[op] / ours[op]
            cpu = ""
            if op != "total" and ours[f"{op}_cpu"] > 0:
                cpu = f"   server CPU {theirs[f'{op}_cpu'] / ours[f'{op}_cpu']:>6.2f}×"
            print(f"      {op:<12} {ratio:>6.2f}×  ({verdict(ratio >= 3)}){cpu}")
    else:
        print("    mlflow server: not run (--no-peer or not installed)")


if __name__ == "__main__":
    sys.exit(main())
