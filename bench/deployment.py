"""Deployments (``mloop serve --deployment``): router overhead, canary rollback, blue/green,
bandits and shadow, each measured against mloop serving the model directly.

The breast-cancer LogisticRegression pipeline of bench/serving.py is ``models:/churn/1``;
the servers are pinned to core 0 and this load generator (aiohttp, asyncio) to core 1.

(a) **Router overhead.** ``mloop serve models:/churn/1`` (A) against ``mloop serve
    --deployment churn-live`` (B: one arm, that model), the same V2 one-row body and the same
    /predict one-row body under CONCURRENCY connections: requests per server CPU-second
    (/proc user+system) and p99. Each server runs alone, started cold, interleaved A, B, A,
    B, … for ``--rounds`` rounds; the medians are compared (2 shared cores: noise is large).
(b) **Canary of a bad model.** Two Python-flavor models (a class in a module written to the
    temporary folder and put on PYTHONPATH of this process and of the server, saved with
    ``mloop.log_model``, served with ``--allow-pickle``): ``Flaky`` raises on 20% of rows
    (a fixed CRC bucket of the row, so micro-batching, which retries a failed batch in
    halves, fails exactly those requests), ``Worse`` flips the answer on 20% of rows
    (accuracy ~20 points lower). Under steady load — every answered request gets its true
    label through ``POST /api/v1/feedback`` (batched as ``items``) — ``mloop.deploy.canary``
    starts with steps 10,50,100 and ``--interval``; the server (``--poll-interval 0.5s``)
    runs the controller. The history is polled for the canary revision's ``aborted`` event.
    Printed: seconds from the canary's start to its rollback (event times in the store),
    the canary's requests (errors, or answers) and the revision's total from the traffic
    index, the canary's share, and whether it was aborted at the first analysis that had
    enough samples: the abort's failing measure has ≥ min_samples, and one early-look
    period (the controller looks every 5 s) before the abort the canary had fewer than
    min_samples requests (labels for the live metric) in the index — an approximation, as
    looks that find nothing are not recorded.
(c) **Blue/green** under CONCURRENCY connections: ``bluegreen`` (green = another version,
    waited for until the server routes the new revision), ``switch``, ``switch`` back.
    Printed: failed requests (any non-200 or connection error; goal 0) and the time from
    each ``switch`` call to the first answer from the new color (``x-mloop-arm``).
(d) **Bandits.** ``mloop.deploy.bandits.simulate`` over Bernoulli arms 0.05/0.06/0.08,
    50,000 requests (weights recomputed every 500, as the controller does per interval):
    cumulative regret of thompson, ucb1, epsilon-greedy and the fixed even split, and the
    ratio of each to the even split (mean over ``--seeds`` seeds).
(e) **Shadow.** The one-arm deployment's maximum rate (closed loop, CONCURRENCY
    connections), then an open loop at 30% of it (requests sent on a fixed schedule,
    latency counted from the scheduled time) without a shadow and with ``shadow(..., sample
    1.0)``, alternating for ``--rounds`` rounds (a shadow revision, then a rollback to one
    arm, each waited for until the server routes it): the medians of the primary's p99
    (and p50, and the server's CPU) and the p99 ratio (goal ≤ 1.1×). At this rate a p99
    over a few seconds is set by a handful of stalls (the server's garbage collections,
    the writer threads' once-a-second flush, another process on the core), so single runs
    vary. The load generator measures with its own garbage collector off (``quiet_gc``).

Peers: Argo Rollouts, Flagger and Seldon Core need Kubernetes (and a service mesh,
Prometheus) and cannot run on this machine, so no peer runs here. The baseline for (a) and
(e) is mloop serving the model directly, as issue 16 states; for (d) the even split.

Usage: python bench/deployment.py [--smoke] [--no-peer] [--seconds 8] [--rounds 5]
                                  [--concurrency 16] [--interval 30s]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# the script's folder is on sys.path: the shared helpers of the serving benchmark
from serving import (
    BIN,
    compiled_bytecode,
    cpu_seconds,
    free_port,
    measure,
    pin,
    v2_body,
    wait_ready,
)

DEPLOYMENT = "churn-live"
SHARE = 20  # percent of rows the bad models fail or get wrong

MODELS = textwrap.dedent("""
    # The deliberately bad models of bench/deployment.py (pickled by reference to here).
    import zlib
    import numpy as np

    def bucket(X):
        rows = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
        return np.array([zlib.crc32(r.tobytes()) % 100 for r in rows])

    class Flaky:
        # raises on a request with a row in the bad bucket
        def __init__(self, model, share):
            self.model, self.share = model, share
        def predict(self, X):
            if (bucket(X) < self.share).any():
                raise RuntimeError("deliberate failure (bench)")
            return self.model.predict(X)

    class Worse:
        # answers the other class on the rows of the bad bucket
        def __init__(self, model, share):
            self.model, self.share = model, share
        def predict(self, X):
            pred = np.asarray(self.model.predict(X))
            return np.where(bucket(X) < self.share, 1 - pred, pred)
""")


def bucket(X: Any) -> Any:
    import numpy as np

    rows = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
    return np.array([zlib.crc32(r.tobytes()) % 100 for r in rows])


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """No garbage collection in this load generator while it measures: a full collection
    of a process holding pandas, scikit-learn and mloop pauses it for 100-200 ms, which an
    open loop would count as the server's latency."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


# ── servers ──────────────────────────────────────────────────────────────────────────────

class Server:
    """One ``mloop serve`` process, pinned to core 0, stopped on exit."""

    def __init__(self, base: Path, args: list[str], log: str) -> None:
        self.port = free_port()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(base), *filter(None, [os.environ.get("PYTHONPATH")])]))
        self.log = base / log
        self.proc = subprocess.Popen([str(BIN / "mloop"), "serve", *args, "--port",
                                      str(self.port)], cwd=base / "mloop", env=env,
                                     stdout=subprocess.DEVNULL, stderr=self.log.open("w"))
        pin(self.proc.pid, 0)
        try:
            self.cold = wait_ready(self.url("/v2/health/ready"), self.proc)
        except SystemExit:
            print(self.log.read_text()[-3000:])
            raise

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def deployment_server(base: Path, poll: str = "2s") -> Server:
    return Server(base, ["--deployment", DEPLOYMENT, "--allow-pickle", "--poll-interval",
                         poll], "deployment.log")


# ── (a) router overhead ──────────────────────────────────────────────────────────────────

def overhead(base: Path, bodies: dict[str, bytes], args: Any) -> None:
    """A (direct) and B (deployment), alone and interleaved; medians per body."""
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.rounds):
        for label, server_args, name in (
                ("direct", ["models:/churn/1"], "churn"),
                ("deployment", ["--deployment", DEPLOYMENT], DEPLOYMENT)):
            with Server(base, server_args, f"{label}.log") as s:
                for body, path in (("V2 1 row", f"/v2/models/{name}/infer"),
                                   ("/predict 1 row", "/predict")):
                    with quiet_gc():
                        runs.setdefault((label, body), []).append(measure(
                            label, s.proc, s.url(path), bodies[body], args.seconds,
                            args.concurrency, s.cold))
    print(f"(a) router overhead: {args.concurrency} connections, {args.seconds:g} s per "
          f"measurement, medians of {args.rounds} interleaved rounds (A, B, A, B, …)")
    for body in ("V2 1 row", "/predict 1 row"):
        med = {label: {k: statistics.median(r[k] for r in runs[(label, body)])
                       for k in ("per_cpu", "p99", "rps")}
               for label in ("direct", "deployment")}
        for label, text in (("direct", "mloop serve models:/churn/1"),
                            ("deployment", f"mloop serve --deployment {DEPLOYMENT}")):
            m, each = med[label], [f"{r['per_cpu']:.0f}" for r in runs[(label, body)]]
            print(f"    {body:<15} {text:<37} {m['rps']:7.0f} req/s  p99 {m['p99']:6.1f} ms  "
                  f"{m['per_cpu']:6.0f} req/CPU-s (rounds: {', '.join(each)})")
        ratio = med["deployment"]["per_cpu"] / med["direct"]["per_cpu"]
        print(f"    {body:<15} deployment / direct: {ratio:.2f}x req/CPU-s (goal >= 0.95x: "
              f"{'met' if ratio >= 0.95 else 'NOT met'}), p99 "
              f"{med['deployment']['p99'] / med['direct']['p99']:.2f}x")


# ── load with labels (b, c) ──────────────────────────────────────────────────────────────

class Load:
    """CONCURRENCY workers sending one-row /predict requests until stopped; every answer
    is counted by arm, every failure counted, and (``labels``) every answered request's
    true label is sent back through ``POST /api/v1/feedback`` in batches."""

    def __init__(self, server: Server, records: list[bytes], labels: list[int] | None,
                 concurrency: int) -> None:
        self.server, self.records, self.labels = server, records, labels
        self.concurrency = concurrency
        self.stop = threading.Event()
        self.ok = 0
        self.failed = 0
        self.failures: dict[str, int] = {}
        self.first: dict[str, float] = {}  # arm -> perf_counter of its first answer
        self.since: float | None = None  # count first answers only after this
        self.feedback_failed = 0
        self._pending: list[tuple[str, int, str]] = []  # request id, label, arm
        self.label_times: dict[str, list[float]] = {}  # arm -> when each label was stored
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(timeout=60)

    def watch(self) -> None:
        """From now on, note the first answer of each arm."""
        self.first = {}
        self.since = time.perf_counter()

    async def _run(self) -> None:
        import aiohttp

        headers = {"content-type": "application/json"}
        url = self.server.url("/predict")
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency + 2)) as s:
            async def worker(k: int) -> None:
                i = k * 37
                while not self.stop.is_set():
                    i = (i + 1) % len(self.records)
                    try:
                        async with s.post(url, data=self.records[i], headers=headers) as r:
                            await r.read()
                            status, rid = r.status, r.headers.get("x-request-id")
                            arm = r.headers.get("x-mloop-arm", "")
                    except aiohttp.ClientError as exc:
                        status, rid, arm = type(exc).__name__, None, ""
                    self._answer(status, rid, arm, i)

            async def feedback() -> None:
                while not self.stop.is_set() or self._pending:
                    await asyncio.sleep(0.25)
                    batch, self._pending = self._pending[:5000], self._pending[5000:]
                    if batch:
                        items = [{"request_id": rid, "label": y} for rid, y, _ in batch]
                        async with s.post(self.server.url("/api/v1/feedback"),
                                          data=json.dumps({"items": items}),
                                          headers=headers) as r:
                            await r.read()
                            self.feedback_failed += r.status != 200
                        stored = time.time() * 1000
                        for _, _, arm in batch:
                            self.label_times.setdefault(arm, []).append(stored)

            tasks = [worker(k) for k in range(self.concurrency)]
            if self.labels is not None:
                tasks.append(feedback())
            await asyncio.gather(*tasks)

    def _answer(self, status: int | str, rid: str | None, arm: str, i: int) -> None:
        if status != 200:
            self.failed += 1
            self.failures[str(status)] = self.failures.get(str(status), 0) + 1
            return
        self.ok += 1
        if self.since is not None and arm not in self.first:
            self.first[arm] = time.perf_counter()
        if self.labels is not None and rid is not None:
            self._pending.append((rid, self.labels[i], arm))


def routed(server: Server, body: bytes, revision: int, timeout: float = 120) -> None:
    """Wait until the server answers under ``revision`` (it loaded what that needs)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        req = urllib.request.Request(server.url("/predict"), data=body,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            if int(r.headers.get("x-mloop-revision", -1)) >= revision:
                return
        time.sleep(0.1)
    raise SystemExit(f"the server did not route revision {revision} in {timeout:.0f} s")


# ── (b) canary of a bad model ────────────────────────────────────────────────────────────

def canary_case(project: Any, server: Server, model: str, what: str, records: list[bytes],
                labels: list[int], args: Any) -> None:
    import mloop.deploy as deploy

    timeout = args.interval_s * 5 + 30  # 3 inconclusive intervals abort at the latest
    with Load(server, records, labels, args.concurrency) as load:
        time.sleep(0.5 if args.smoke else 3.0)  # steady load before the canary
        rev = deploy.canary(DEPLOYMENT, model, steps="10,50,100", interval=args.interval,
                            analysis=args.spec, project=project)
        ok0, failed0 = load.ok, load.failed
        event = None
        deadline = time.monotonic() + timeout
        while event is None and time.monotonic() < deadline:
            time.sleep(0.2)
            event = next((e for e in deploy.history(DEPLOYMENT, limit=20,
                                                    project=project).events
                          if e.revision == rev.number and e.kind in ("aborted", "promoted")),
                         None)
        seen = load.ok - ok0 + load.failed - failed0
    time.sleep(1.5)  # the traffic index is written about once a second
    report_canary(project, rev, event, what, seen, load.label_times.get("canary", []), args)


def report_canary(project: Any, rev: Any, event: Any, what: str, seen: int,
                  labelled: list[float], args: Any) -> None:
    import numpy as np

    from mloop import repositories
    from mloop.deploy.analysis import default_spec, load_spec

    print(f"(b) canary of a model that {what}: steps 10,50,100, interval {args.interval}")
    if event is None or event.kind != "aborted":
        print(f"    NOT aborted within the wait ({event.kind if event else 'no decision'})")
        return
    traffic = repositories.backend(project).traffic
    cols = traffic.read(DEPLOYMENT, rev.number)
    arm, outcome = np.asarray(cols.arm), np.asarray(cols.outcome)
    times = np.asarray(cols.time_ms)
    canary = arm == "canary"
    errors = int((canary & (outcome == "error")).sum())
    seconds = (event.created_at - rev.created_at) / 1000
    share = canary.sum() / max(len(arm), 1)
    affected = errors if "errors" in what else int(canary.sum())
    print(f"    rolled back after {seconds:.1f} s: canary answered {int(canary.sum()):,} "
          f"requests ({errors:,} errors), {len(arm):,} requests in the revision "
          f"(load generator: {seen:,} while waiting); affected {affected:,} = "
          f"{affected / max(len(arm), 1):.1%} of traffic (canary share {share:.1%}, "
          f"first step 10%)")
    analysis = event.analysis or {}
    spec = load_spec(args.spec) if args.spec else default_spec()
    floor = {m["name"]: m["min_samples"] for m in spec["metrics"]}
    failed = [m for m in analysis.get("metrics", []) if m["status"] == "fail"]
    steps = [10, 50, 100]
    step = analysis.get("step")
    print(f"    the abort: {'early look' if analysis.get('early') else 'scheduled analysis'}"
          f" at step {step} (canary at {steps[step] if step is not None else '?'}%), "
          f"{analysis.get('summary', event.reason)}")
    # The look before the abort was at most 5 s (the controller's early-look period) or
    # one interval before it: what the canary had then bounds what that look saw.
    look = min(5.0, args.interval_s)  # early looks every 5 s, scheduled every interval
    first, before = bool(failed), event.created_at - look * 1000
    total = max(len(arm), 1)  # the split is random: allow for its noise
    limit = 0.10 + 3 * (0.10 * 0.90 / total) ** 0.5
    within = affected / total <= limit
    for m in failed:
        need = floor.get(m["name"], 0)
        if m["kind"] == "live_metric":  # labels stored by then (the load generator's clock)
            before_n, what_n = int((np.asarray(labelled) <= before).sum()), "labels"
        else:
            before_n, what_n = int((canary & (times <= before)).sum()), "requests"
        enough = min(m["samples"].values()) >= need
        first &= enough and before_n < need
        print(f"    {m['name']}: samples {m['samples']} (min_samples {need}); at most "
              f"{before_n:,} canary {what_n} one look ({look:g} s) before")
    print(f"    aborted at the first analysis with enough samples: {'yes' if first else 'no'}"
          f"; affected within the canary's share: {'yes' if within else 'no'} ({affected:,} "
          f"of {total:,} <= {limit:.1%}: the first step's 10% and 3 binomial sd)")


# ── (c) blue/green ───────────────────────────────────────────────────────────────────────

def bluegreen_case(project: Any, server: Server, records: list[bytes], args: Any) -> None:
    import mloop.deploy as deploy

    with Load(server, records, None, args.concurrency) as load:
        time.sleep(0.5 if args.smoke else 2.0)
        rev = deploy.bluegreen(DEPLOYMENT, "models:/churn/4", project=project)
        routed(server, records[0], rev.number)
        times = []
        for to in ("green", "blue"):
            time.sleep(0.5 if args.smoke else 3.0)
            load.watch()
            t0 = time.perf_counter()
            deploy.switch(DEPLOYMENT, project=project)
            deadline = time.monotonic() + 60
            while to not in load.first and time.monotonic() < deadline:
                time.sleep(0.005)
            times.append(load.first.get(to, float("nan")) - t0)
        time.sleep(0.5 if args.smoke else 3.0)
    deploy.rollback(DEPLOYMENT, project=project)
    print(f"(c) blue/green under {args.concurrency} connections: {load.ok + load.failed:,} "
          f"requests, {load.failed} failed{' ' + str(load.failures) if load.failed else ''} "
          f"(goal 0: {'met' if load.failed == 0 else 'NOT met'}); switch to the first green "
          f"answer {times[0] * 1000:.0f} ms, switch back to the first blue answer "
          f"{times[1] * 1000:.0f} ms")


# ── (d) bandits ──────────────────────────────────────────────────────────────────────────

def bandit_case(args: Any) -> None:
    from mloop.deploy.bandits import simulate

    rates, n = (0.05, 0.06, 0.08), 5_000 if args.smoke else 50_000
    regret = {}
    for algorithm in ("thompson", "ucb1", "epsilon-greedy", None):
        t = time.perf_counter()
        runs = [simulate(rates, n, algorithm, seed=s) for s in range(args.seeds)]
        regret[algorithm] = (statistics.mean(r.cumulative_regret for r in runs),
                             runs[0].pulls, time.perf_counter() - t)
    even = regret[None][0]
    print(f"(d) bandits: Bernoulli arms {'/'.join(map(str, rates))}, {n:,} requests, "
          f"weights every 500, mean of {args.seeds} seeds")
    for algorithm, (value, pulls, seconds) in regret.items():
        print(f"    {algorithm or 'even split':<15} cumulative regret {value:8.1f}  "
              f"{value / even:.2f}x the even split  (pulls, seed 0: {pulls}; {seconds:.1f} s)")


# ── (e) shadow ───────────────────────────────────────────────────────────────────────────

async def open_loop(url: str, body: bytes, rate: float, seconds: float) -> list[float]:
    """Requests sent at ``rate`` per second on a fixed schedule; latency from the schedule."""
    import aiohttp

    headers = {"content-type": "application/json"}
    out: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as s:
        async def one(at: float) -> None:
            async with s.post(url, data=body, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise SystemExit(f"{url} answered {r.status}")
            out.append(time.perf_counter() - at)

        start, tasks = time.perf_counter() + 0.05, []
        for i in range(int(rate * seconds)):
            at = start + i / rate
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            tasks.append(asyncio.create_task(one(at)))
        await asyncio.gather(*tasks)
    return out


def p99(latencies: list[float]) -> float:
    lat = sorted(latencies)
    return lat[max(int(len(lat) * 0.99) - 1, 0)] * 1000


def shadow_case(project: Any, server: Server, body: bytes, args: Any) -> None:
    """Without and with the shadow, alternating for ``--rounds`` rounds; medians."""
    import mloop.deploy as deploy

    url = server.url(f"/v2/models/{DEPLOYMENT}/infer")
    with quiet_gc():
        top = measure("max", server.proc, url, body, args.seconds, args.concurrency, 0.0)
    rate = 0.3 * top["rps"]
    seconds = args.seconds * (1 if args.smoke else 2)
    runs: dict[str, list[tuple[float, float, float]]] = {"alone": [], "shadow": []}
    for _ in range(args.rounds):
        for mode in ("alone", "shadow"):
            if mode == "shadow":
                rev = deploy.shadow(DEPLOYMENT, "models:/churn/4", sample=1.0, project=project)
            elif runs["shadow"]:  # the shadow of the round before ends
                rev = deploy.rollback(DEPLOYMENT, project=project)
            else:
                rev = deploy.replace(DEPLOYMENT, "models:/churn/1", project=project)
            routed(server, args.record, rev.number)
            asyncio.run(open_loop(url, body, rate, 1.0))  # warm-up
            cpu0 = cpu_seconds(server.proc.pid)
            with quiet_gc():
                lat = asyncio.run(open_loop(url, body, rate, seconds))
            runs[mode].append((p99(lat), (cpu_seconds(server.proc.pid) - cpu0) / seconds,
                               statistics.median(lat) * 1000))
    deploy.rollback(DEPLOYMENT, project=project)
    med = {m: [statistics.median(r[i] for r in v) for i in range(3)] for m, v in runs.items()}
    ratio = med["shadow"][0] / med["alone"][0]
    each = {m: ", ".join(f"{r[0]:.1f}" for r in v) for m, v in runs.items()}
    print(f"(e) shadow: one-arm maximum {top['rps']:.0f} req/s ({args.concurrency} "
          f"connections, V2 1 row); open loop at 30% = {rate:.0f} req/s, {seconds:g} s per "
          f"run, {args.rounds} alternating rounds: primary p99 {med['alone'][0]:.1f} ms "
          f"without a shadow ({each['alone']}), {med['shadow'][0]:.1f} ms with a shadow at "
          f"100% ({each['shadow']}); server CPU {med['alone'][1]:.0%} and "
          f"{med['shadow'][1]:.0%} of a core; p50 {med['alone'][2]:.1f} and "
          f"{med['shadow'][2]:.1f} ms; p99 ratio {ratio:.2f}x "
          f"(goal <= 1.1x: {'met' if ratio <= 1.1 else 'NOT met'})")


# ── main ─────────────────────────────────────────────────────────────────────────────────

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--no-peer", action="store_true",
                        help="accepted for symmetry: the peers need Kubernetes, none runs")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--interval", default="30s", help="the canary's analysis interval")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", default="abcde", help="sections to run, e.g. 'bd'")
    args = parser.parse_args(argv)
    args.spec = None
    if args.smoke:
        args.seconds, args.rounds, args.concurrency, args.interval = 0.5, 1, 4, "2s"
        args.seeds = 1
        # tiny samples so that both canaries are judged within seconds
        args.spec = {"metrics": [{"kind": "error_rate", "min_samples": 20},
                                 {"kind": "live_metric", "min_samples": 20}]}
    from mloop.core.clock import parse_duration

    args.interval_s = parse_duration(args.interval) / 1000
    pin(0, 1)  # this process: the load generator
    if "d" in args.only:
        bandit_case(args)
    if not set(args.only) & set("abce"):
        return 0
    with tempfile.TemporaryDirectory(prefix="mloop-deployment-bench-") as tmp:
        run_servers(Path(tmp), args)
    return 0


def run_servers(base: Path, args: Any) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import mloop
    import mloop.deploy as deploy

    (base / "mloop_bench_models.py").write_text(MODELS)
    sys.path.insert(0, str(base))
    import mloop_bench_models as bad  # type: ignore[import-not-found]

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    other = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=1000)).fit(X, y)
    good = X[bucket(X) >= SHARE][:5]  # the bad models' input example: they answer it
    compiled_bytecode()
    project = mloop.init(base / "mloop")
    for m, example in ((model, X[:5]), (bad.Flaky(model, SHARE), good),
                       (bad.Worse(model, SHARE), good), (other, X[:5])):
        with mloop.start_run(project=project):
            mloop.log_model(m, input_example=example, registered_name="churn")
    deploy.create(DEPLOYMENT, "models:/churn/1", project=project)
    records = [json.dumps({"records": X.iloc[i:i + 1].to_dict(orient="records")}).encode()
               for i in range(len(X))]
    labels = [int(v) for v in y]
    args.record = records[0]
    print(f"rows in the bad bucket: {(bucket(X) < SHARE).mean():.1%} of {len(X)}; accuracy "
          f"on them: good {model.score(X, y):.3f}, worse "
          f"{(bad.Worse(model, SHARE).predict(X) == y).mean():.3f}; server on core 0, load "
          f"generator on core 1; load average {os.getloadavg()[0]:.2f}")
    if "a" in args.only:
        overhead(base, {"V2 1 row": v2_body(X[:1]), "/predict 1 row": records[0]}, args)
    if set(args.only) & set("bce"):
        with deployment_server(base, "0.5s") as server:
            if "b" in args.only:
                canary_case(project, server, "models:/churn/2", f"errors on {SHARE}% of "
                            "requests", records, labels, args)
                canary_case(project, server, "models:/churn/3", f"is {SHARE} points less "
                            "accurate", records, labels, args)
            if "c" in args.only:
                bluegreen_case(project, server, records, args)
            if "e" in args.only:
                shadow_case(project, server, v2_body(X[:1]), args)
    project.close()


if __name__ == "__main__":
    sys.exit(main())
