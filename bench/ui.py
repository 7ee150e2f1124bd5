"""The web UI's budgets (issue 18), measured through the real apps on 127.0.0.1.

(1) **The runs page over R runs** (default 10,000, 5 params and 5 metrics each): ``GET
    /ui/runs`` of ``mloop ui`` with 50 runs a page, sorted by a metric, with a filter —
    the time from request to the last byte (gzip asked, as a browser does), p50 and p95
    over N requests after a warm-up (goal: p95 ≤ 100 ms). Beside it, MLflow's UI server
    (``mlflow server``, its SQLite store, one worker) on the same runs: the call its runs
    table makes, ``POST /ajax-api/2.0/mlflow/runs/search`` with ``max_results`` 50, the
    same order and filter — MLflow's page itself is a static bundle, so this call is its
    server time, the leanest equivalent — and the ratio. Both answer the same 50 runs
    (their metric values are checked to be equal).
(2) **Compare of C runs × P metric points each** (default 10 × 10,000, one ``loss`` curve
    per run): ``GET /ui/runs/compare`` — the bytes of the HTML page as sent (gzipped by
    the UI's middleware; goal ≤ 1 MB), the points it carries (downsampled with LTTB, the
    rest fetched on zoom) and its server time.

The runs are written straight through each store's own statements (mloop's runs
repository, MLflow's SQLAlchemy models), in batches: the fluent APIs would take minutes
for 10,000 runs, and how fast runs are written is bench/tracking.py's subject.

Usage: python bench/ui.py [--smoke] [--no-peer] [--runs 10000] [--requests 50]
                          [--compare-runs 10] [--points 10000]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import logging
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
FILTER = "metrics.acc > 0.9 and params.model = 'logreg'"
ORDER = "metrics.acc DESC"
EXPERIMENT = "bench-ui"
PAGE = 50


def _server_bench() -> Any:
    """bench/server.py, for its server runner and its mloop store seeding (shared, so both
    benches measure the same runs)."""
    spec = importlib.util.spec_from_file_location("bench_server", HERE.parent / "server.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SB = _server_bench()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def timed_gets(client: Any, send: Any, count: int, warm: int = 5) -> tuple[list[float], Any]:
    """Times of ``count`` calls of ``send(client)`` after ``warm`` unmeasured ones."""
    reply = None
    for _ in range(warm):
        reply = send(client)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        reply = send(client)
        times.append(time.perf_counter() - start)
    return times, reply


# ── the stores ─────────────────────────────────────────────────────────────────────────
def seed_compare(project: Any, runs: int, points: int) -> list[str]:
    """``runs`` runs of experiment "bench-compare", each with a ``loss`` curve of
    ``points`` steps and a few params, written through the runs repository."""
    from mloop.repositories import backend
    from mloop.tracking.fluent import log_params, start_run

    ids = []
    rng = np.random.default_rng(7)
    store = backend(project).runs
    for i in range(runs):
        with start_run(experiment="bench-compare", name=f"curve-{i}", project=project) as run:
            log_params({"lr": 10.0 ** -(1 + i % 4), "batch": 32 * (1 + i % 3),
                        "optimizer": ("adam", "sgd")[i % 2]})
            steps = np.arange(points)
            loss = np.exp(-steps / (points / (2 + i))) + rng.normal(0, 0.02, points)
            now = int(time.time() * 1000)
            store.write_points([(run.id, "loss", int(s), now + int(s), float(v))
                                for s, v in zip(steps, loss, strict=True)])
            ids.append(run.id)
    return ids


def seed_mlflow(root: Path, count: int) -> tuple[str, float]:
    """The runs of :func:`bench_server.seed_mloop` in a fresh MLflow SQLite store, written
    with MLflow's own SQLAlchemy models in batches: (experiment id, seconds)."""
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import insert

    for noisy in ("alembic", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    root.joinpath("artifacts").mkdir(parents=True, exist_ok=True)
    store = SqlAlchemyStore(f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts"))
    exp_id = store.create_experiment(EXPERIMENT)
    rng = np.random.default_rng(0)  # the same values as the mloop store's
    start = time.perf_counter()
    now = int(time.time() * 1000)
    for first in range(0, count, 5000):
        runs, params, metrics, tags = [], [], [], []
        for i in range(first, min(count, first + 5000)):
            values, scores = SB.run_values(i, rng)
            rid = uuid.uuid4().hex
            runs.append({"run_uuid": rid, "name": f"run-{i}", "source_type": "LOCAL",
                         "source_name": "", "entry_point_name": "", "user_id": "bench",
                         "status": "FINISHED", "start_time": now + i, "end_time": now + i + 1,
                         "source_version": "", "lifecycle_stage": "active",
                         "artifact_uri": str(root / "artifacts" / rid),
                         "experiment_id": int(exp_id)})
            params += [{"run_uuid": rid, "key": k, "value": str(v)} for k, v in values.items()]
            metrics += [{"run_uuid": rid, "key": k, "value": v, "timestamp": now + i,
                         "step": 0, "is_nan": False} for k, v in scores.items()]
            tags.append({"run_uuid": rid, "key": "mlflow.runName", "value": f"run-{i}"})
        with store.ManagedSessionMaker() as session:
            session.execute(insert(SqlRun), runs)
            session.execute(insert(SqlParam), params)
            session.execute(insert(SqlMetric), metrics)
            session.execute(insert(SqlLatestMetric), metrics)
            session.execute(insert(SqlTag), tags)
    store.engine.dispose()
    return exp_id, time.perf_counter() - start


# ── the measurements ───────────────────────────────────────────────────────────────────
def runs_page(url: str, count: int) -> tuple[list[float], int]:
    """Times of the runs page, and the rows of its last answer."""
    import httpx

    query = {"experiment": EXPERIMENT, "filter": FILTER, "order": ORDER}
    with httpx.Client(base_url=url, timeout=60,
                      headers={"accept-encoding": "gzip"}) as client:
        def send(c: Any) -> Any:
            reply = c.get("/ui/runs", params=query)
            reply.raise_for_status()
            return reply
        times, reply = timed_gets(client, send, count)
    rows = len(re.findall(r'name="ids" value="', reply.text))
    return times, rows


def mlflow_search(url: str, exp_id: str, count: int) -> tuple[list[float], list[float]]:
    """Times of MLflow's runs-table call, and the acc of the runs it answered."""
    import httpx

    body = {"experiment_ids": [exp_id], "filter": FILTER, "max_results": PAGE,
            "order_by": ["metrics.`acc` DESC"], "run_view_type": "ACTIVE_ONLY"}
    with httpx.Client(base_url=url, timeout=60,
                      headers={"accept-encoding": "gzip"}) as client:
        def send(c: Any) -> Any:
            reply = c.post("/ajax-api/2.0/mlflow/runs/search", json=body)
            reply.raise_for_status()
            return reply
        times, reply = timed_gets(client, send, count)
    accs = [next(m["value"] for m in r["data"]["metrics"] if m["key"] == "acc")
            for r in reply.json()["runs"]]
    return times, accs


def compare_page(url: str, ids: list[str], count: int) -> tuple[int, int, int, list[float]]:
    """(gzipped bytes as sent, bytes unzipped, points in its charts, times)."""
    import httpx

    with httpx.Client(base_url=url, timeout=60,
                      headers={"accept-encoding": "gzip"}) as client:
        def send(c: Any) -> Any:
            reply = c.get("/ui/runs/compare", params={"ids": ",".join(ids)})
            reply.raise_for_status()
            return reply
        times, _ = timed_gets(client, send, count, warm=2)
        with client.stream("GET", "/ui/runs/compare", params={"ids": ",".join(ids)}) as raw:
            assert raw.headers.get("content-encoding") == "gzip", raw.headers
            sent = b"".join(raw.iter_raw())
    html = gzip.decompress(sent)
    # count numbers, not characters: each "x" array holds one number a point
    points = sum(block.count(b",") + 1 for block in re.findall(rb'"x":\[([^\]]+)\]', html))
    return len(sent), len(html), points, times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument("--no-peer", action="store_true", help="skip MLflow's server")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--compare-runs", type=int, default=10)
    parser.add_argument("--points", type=int, default=10_000)
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.requests, args.compare_runs, args.points = 300, 5, 3, 2_000
    peer = not args.no_peer
    if peer:
        try:
            import mlflow  # noqa: F401
        except ImportError:
            print("MLflow is not installed (pip install -e '.[bench]'): its server skipped.")
            peer = False

    import mloop

    os.environ["MLOOP_CAPTURE_PACKAGES"] = "0"
    with tempfile.TemporaryDirectory(prefix="mloop-bench-ui-") as tmp:
        base = Path(tmp)
        project = mloop.Project.init(base / "mloop")
        seconds = SB.seed_mloop(project, EXPERIMENT, args.runs)
        print(f"mloop store: {args.runs:,} runs written in {seconds:.1f} s")
        ids = seed_compare(project, args.compare_runs, args.points)
        expected = mloop.search_runs(experiment=EXPERIMENT, filter=FILTER, order_by=ORDER,
                                     max_results=PAGE, project=project)["metrics.acc"]
        project.close()
        with SB.Server("mloop ui", [sys.executable, "-m", "mloop", "ui", "--port", "{port}"],
                       "/ui/", base / "mloop-ui.log", cwd=base / "mloop") as server:
            print(f"mloop ui ready in {server.cold:.2f} s")
            ours, rows = runs_page(server.url, args.requests)
            sent, size, points, compare_times = compare_page(server.url, ids,
                                                             max(3, args.requests // 5))
        theirs: list[float] | None = None
        if peer:
            exp_id, seconds = seed_mlflow(base / "mlflow", args.runs)
            print(f"MLflow store: {args.runs:,} runs written with its SQL models in "
                  f"{seconds:.1f} s")
            with SB.mlflow_server(base / "mlflow") as server:
                print(f"mlflow server ready in {server.cold:.2f} s")
                theirs, accs = mlflow_search(server.url, exp_id, args.requests)
            if len(accs) != len(expected) or not np.allclose(accs, expected.to_numpy()):
                raise SystemExit("mloop and MLflow answered different runs: the stores differ")

    p50, p95 = percentile(ours, 50), percentile(ours, 95)
    print(f"\n(1) runs page over {args.runs:,} runs: {PAGE} a page, order {ORDER!r}, "
          f"filter {FILTER!r}; {args.requests} requests")
    print(f"    mloop ui   GET /ui/runs          p50 {ms(p50)}  p95 {ms(p95)}  "
          f"({rows} rows; goal p95 ≤ 100 ms: {'meets' if p95 <= 0.1 else 'MISSES'})")
    if theirs is not None:
        t50, t95 = percentile(theirs, 50), percentile(theirs, 95)
        print(f"    mlflow ui  POST ajax runs/search p50 {ms(t50)}  p95 {ms(t95)}  "
              f"({len(accs)} runs, same metric values)")
        print(f"    MLflow / mloop: p50 {t50 / p50:.1f}x, p95 {t95 / p95:.1f}x")
    else:
        print("    mlflow ui: not run (--no-peer or not installed)")
    print(f"\n(2) compare of {args.compare_runs} runs × {args.points:,} metric points each")
    print(f"    page sent gzipped: {sent:,} bytes ({sent / 1e6:.3f} MB; {size:,} bytes "
          f"unzipped; goal ≤ 1 MB: {'meets' if sent <= 1_000_000 else 'MISSES'})")
    print(f"    points in the page's charts: {points:,} of "
          f"{args.compare_runs * args.points:,} (LTTB; the rest fetched on zoom)")
    print(f"    server time p50 {ms(percentile(compare_times, 50))}  "
          f"p95 {ms(percentile(compare_times, 95))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
