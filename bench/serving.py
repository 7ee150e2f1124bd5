"""REST serving, mloop vs two FastAPI baselines and ``mlflow models serve``, in one run.

The same breast-cancer LogisticRegression pipeline is served by each, on 127.0.0.1, with
the server pinned to core 0 and this load generator (aiohttp, asyncio) to core 1 where
the machine allows. Each server gets CONCURRENCY connections for SECONDS of single-row
requests; mloop also takes 100-row requests. Printed: requests/s, p50/p99 latency,
requests per server CPU-second (the server process's user+system time from
/proc/PID/stat), and the cold start (launch to ready).

Baselines: "bare" is the leanest server that can answer the Open Inference Protocol: a
FastAPI + uvicorn app that loads the model with joblib and answers
``POST /v2/models/{name}/infer`` with ``predict_proba`` on the tensor as sent (no
validation, no logging, no metrics). "rich" answers ``POST /predict`` with records,
built into a DataFrame and predicted (what a hand-written service usually is). mloop
gets the same V2 body as "bare" (engines native, onnx and auto) and the records body
as "rich"; the ratios against both, and against MLflow, are printed.

Usage: python bench/serving.py [--smoke] [--no-peer] [--rest-only] [--seconds 20]
                               [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent

RICH = textwrap.dedent("""
    import sys, joblib, numpy as np, pandas as pd
    from fastapi import FastAPI, Request
    model = joblib.load(sys.argv[1])
    columns = list(model.feature_names_in_)
    app = FastAPI()

    @app.get("/ready")
    def ready():
        return {"ready": True}

    @app.post("/predict")
    async def predict(request: Request):
        body = await request.json()
        frame = pd.DataFrame(body["records"], columns=columns)
        return {"predictions": model.predict(frame).tolist()}

    import uvicorn
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
""")

# The lean V2 server: the tensor goes to predict_proba as it came (an array; the
# pipeline's feature names are not checked, and its warning about them is silenced).
BARE = textwrap.dedent("""
    import sys, warnings, joblib, numpy as np
    from fastapi import FastAPI, Request
    warnings.simplefilter("ignore")
    model = joblib.load(sys.argv[1])
    app = FastAPI()

    @app.get("/v2/health/ready")
    def ready():
        return {"ready": True}

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request):
        body = await request.json()
        tensor = body["inputs"][0]
        rows = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        proba = model.predict_proba(rows)
        return {"model_name": name, "outputs": [{
            "name": "predict_proba", "datatype": "FP64", "shape": list(proba.shape),
            "data": proba.ravel().tolist()}]}

    import uvicorn
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
""")


def v2_body(X: Any) -> bytes:
    """One V2 infer request: the rows of ``X`` as one FP64 tensor [n, k]."""
    return json.dumps({"inputs": [{"name": "input", "shape": list(X.shape), "datatype": "FP64",
                                   "data": X.to_numpy().ravel().tolist()}],
                       "outputs": [{"name": "predict_proba"}]}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            continue
    return total


def pin(pid: int, core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {core})


def compiled_bytecode() -> None:
    """Every server starts with compiled bytecode, as after a pip install: the peers'
    was compiled by pip; mloop installed in development mode was not, and some
    environments set PYTHONDONTWRITEBYTECODE, which would make each ``mloop serve``
    compile mloop's source at start-up. mloop's bytecode is compiled once here, where
    Python looks for it (``__pycache__`` beside the source, as pip would)."""
    import mloop

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q",
                    str(Path(mloop.__file__).parent)], check=True, env=os.environ)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> float:
    import urllib.request

    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"not ready after {timeout} s: {url}")


async def drive(url: str, body: bytes, seconds: float, concurrency: int) -> list[float]:
    import aiohttp

    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        async def worker() -> None:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                async with s.post(url, data=body, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise SystemExit(f"{url} answered {r.status}")
                latencies.append(time.perf_counter() - t)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def measure(name: str, proc: subprocess.Popen[bytes], url: str, body: bytes, seconds: float,
            concurrency: int, cold: float) -> dict[str, Any]:
    asyncio.run(drive(url, body, min(2.0, seconds), concurrency))  # warm-up
    cpu0 = cpu_seconds(proc.pid)
    start = time.perf_counter()
    lat = asyncio.run(drive(url, body, seconds, concurrency))
    wall = time.perf_counter() - start
    cpu = cpu_seconds(proc.pid) - cpu0
    lat.sort()
    return {"name": name, "rps": len(lat) / wall, "p50": statistics.median(lat) * 1000,
            "p99": lat[int(len(lat) * 0.99) - 1] * 1000, "per_cpu": len(lat) / max(cpu, 1e-9),
            "cold": cold}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--rest-only", action="store_true",
                        help="skip the batch-scoring and async-job lines")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.concurrency = 1.0, 4
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import mloop

    pin(0, 1)  # this process: the load generator
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    bodies = {"1 row": json.dumps({"records": X[:1].to_dict(orient="records")}).encode(),
              "100 rows": json.dumps({"records": X[:100].to_dict(orient="records")}).encode(),
              "V2 1 row": v2_body(X[:1])}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mloop-serving-bench-") as tmp:
        base = Path(tmp)
        compiled_bytecode()
        project = mloop.init(base / "mloop")
        with mloop.start_run(project=project):
            mloop.log_model(model, input_example=X[:5], registered_name="churn")
        project.close()
        servers: list[subprocess.Popen[bytes]] = []
        try:
            results += mloop_runs(base, servers, bodies, args)
            if not args.no_peer:
                results += baseline_runs(base, servers, model, bodies, args)
                results += mlflow_run(base, model, X, bodies["1 row"], args)
        finally:
            for p in servers:
                if p.poll() is None:
                    p.terminate()
                    p.wait(timeout=30)
    if not args.rest_only:
        print(precompute_line(model, X, 20_000 if args.smoke else 500_000))
        for broker in ("sqlite", "redis://127.0.0.1:6379/14"):
            print(async_line(model, X, broker, 200 if args.smoke else 5_000))
    report(results, args)
    return 0


MLOOP_RUNS = (  # flags, label, the bodies it answers
    ((), "mloop serve", ("V2 1 row", "1 row", "100 rows")),
    (("--no-log",), "mloop serve --no-log", ("V2 1 row",)),
    (("--engine", "onnx"), "mloop serve --engine onnx", ("V2 1 row",)),
    (("--engine", "native"), "mloop serve --engine native", ("V2 1 row",)),
)


def mloop_runs(base: Path, servers: list[subprocess.Popen[bytes]], bodies: dict[str, bytes],
               args: Any) -> list[dict[str, Any]]:
    """Each `mloop serve` configuration, started cold, then measured."""
    out = []
    for flags, label, wanted in MLOOP_RUNS:
        port = free_port()
        proc = subprocess.Popen([str(BIN / "mloop"), "serve", "models:/churn/1", "--port",
                                 str(port), *flags], cwd=base / "mloop",
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        servers.append(proc)
        pin(proc.pid, 0)
        cold = wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", proc)
        for rows in wanted:
            url = (f"http://127.0.0.1:{port}/v2/models/churn/infer" if rows.startswith("V2")
                   else f"http://127.0.0.1:{port}/predict")
            out.append(measure(f"{label}, {rows}", proc, url, bodies[rows], args.seconds,
                               args.concurrency, cold))
        proc.terminate()
        proc.wait(timeout=30)
    return out


def baseline_runs(base: Path, servers: list[subprocess.Popen[bytes]], model: Any,
                  bodies: dict[str, bytes], args: Any) -> list[dict[str, Any]]:
    """The bare V2 app and the rich /predict app, each started cold, then measured."""
    import joblib

    joblib.dump(model, base / "model.joblib")
    out = []
    for label, code, ready, route, rows in (
            ("bare FastAPI V2", BARE, "/v2/health/ready", "/v2/models/churn/infer",
             "V2 1 row"),
            ("rich FastAPI /predict", RICH, "/ready", "/predict", "1 row")):
        (base / "app.py").write_text(code)
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(base / "app.py"),
                                 str(base / "model.joblib"), str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        servers.append(proc)
        pin(proc.pid, 0)
        cold = wait_ready(f"http://127.0.0.1:{port}{ready}", proc)
        out.append(measure(f"{label}, {rows}", proc, f"http://127.0.0.1:{port}{route}",
                           bodies[rows], args.seconds, args.concurrency, cold))
        proc.terminate()
        proc.wait(timeout=30)
    return out


def report(results: list[dict[str, Any]], args: Any) -> None:
    """Every measurement, then mloop's ratios to each baseline (same run)."""
    print(f"concurrency {args.concurrency}, {args.seconds:.0f} s per measurement; server on "
          f"core 0, load generator on core 1; load average {os.getloadavg()[0]:.2f}")
    for r in results:
        print(f"{r['name']:<36} {r['rps']:8.0f} req/s  p50 {r['p50']:7.1f} ms  p99 "
              f"{r['p99']:7.1f} ms  {r['per_cpu']:7.0f} req/CPU-s  cold start {r['cold']:.2f} s")
    by = {r["name"]: r for r in results}
    logged, unlogged = by["mloop serve, V2 1 row"], by["mloop serve --no-log, V2 1 row"]
    print(f"prediction logging costs {1 - logged['per_cpu'] / unlogged['per_cpu']:.1%} of "
          "requests per CPU-second")
    pairs = [(f"{mine}, V2 1 row", "bare FastAPI V2, V2 1 row")
             for mine in ("mloop serve", "mloop serve --engine native",
                          "mloop serve --engine onnx")]
    pairs += [("mloop serve, 1 row", "rich FastAPI /predict, 1 row")]
    pairs += [(f"{mine}, V2 1 row", "mlflow models serve, 1 row")
              for mine in ("mloop serve", "mloop serve --engine native",
                           "mloop serve --engine onnx")]
    for mine, peer in pairs:
        if mine in by and peer in by:
            ours, theirs = by[mine], by[peer]
            print(f"{mine.split(',')[0]:<28} / {peer.split(',')[0]:<22}: "
                  f"{ours['per_cpu'] / theirs['per_cpu']:.2f}x req/CPU-s, "
                  f"p99 {ours['p99'] / theirs['p99']:.2f}x, "
                  f"cold start {ours['cold']:.2f} s vs {theirs['cold']:.2f} s")


def precompute_line(model: Any, X: Any, rows: int) -> str:
    """mloop batch predict over ``rows`` rows (local Dask threads, SQLite)."""
    import numpy as np
    import pandas as pd

    import mloop

    with tempfile.TemporaryDirectory(prefix="mloop-precompute-bench-") as tmp:
        project = mloop.init(Path(tmp))
        with mloop.start_run(project=project):
            mloop.log_model(model, input_example=X[:5], registered_name="churn", onnx=False)
        reps = rows // len(X) + 1
        table = pd.concat([X] * reps, ignore_index=True).iloc[:rows]
        table = table.assign(customer_id=np.arange(rows))
        path = Path(tmp) / "customers.parquet"
        table.to_parquet(path, row_group_size=50_000)
        result = mloop.batch_predict("models:/churn/1", str(path), key="customer_id",
                                     project=project)
        project.close()
    return (f"precompute: {result.rows:,} rows scored and stored in {result.seconds:.1f} s "
            f"({result.rows / result.seconds:,.0f} rows/s)")


def async_line(model: Any, X: Any, broker: str, jobs: int) -> str:
    """Jobs per second answered by 2 worker threads (one row per job)."""
    import threading
    import uuid

    import mloop
    from mloop.serving.broker import open_broker
    from mloop.serving.worker import Worker

    name = f"bench-{uuid.uuid4().hex[:8]}"  # its own Redis stream: nothing left over counts
    ref = f"models:/{name}/1"
    with tempfile.TemporaryDirectory(prefix="mloop-async-bench-") as tmp:
        project = mloop.init(Path(tmp))
        with mloop.start_run(project=project):
            mloop.log_model(model, input_example=X[:5], registered_name=name, onnx=False)
        try:
            queue = open_broker(broker, project.root)
        except Exception as exc:  # Redis not running here: say so and go on
            project.close()
            return f"async jobs via {broker}: skipped ({exc})"
        rows = X.iloc[:1].to_dict(orient="records")
        ids = [queue.enqueue(ref, rows) for _ in range(jobs)]
        worker = Worker(project, ref, queue, concurrency=2)
        stop = threading.Event()
        start = time.perf_counter()
        thread = threading.Thread(target=worker.run, args=(stop,))
        thread.start()
        queue.result(ids[-1], timeout=600)
        for job in ids:
            queue.result(job, timeout=600)
        seconds = time.perf_counter() - start
        stop.set()
        thread.join()
        queue.close()
        project.close()
    kind = broker.split(":", maxsplit=1)[0]
    return (f"async jobs via {kind}: {jobs:,} one-row jobs in {seconds:.1f} s "
            f"({jobs / seconds:,.0f} jobs/s, 2 worker threads)")


def mlflow_run(base: Path, model: Any, X: Any, one: bytes, args: Any) -> list[dict[str, Any]]:
    """``mlflow models serve`` (one worker) answering MLflow's scoring form."""
    try:
        import mlflow
        import mlflow.sklearn
    except ImportError:
        print("MLflow is not installed: its server is skipped.")
        return []
    uri = f"sqlite:///{base / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    # MLflow's default artifact root is ./mlruns in the working directory: keep its
    # files (pickles among them) in the temporary folder, never in the repository.
    mlflow.create_experiment("bench", artifact_location=(base / "mlartifacts").as_uri())
    mlflow.set_experiment("bench")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:5],
                                        serialization_format="cloudpickle")
    port = free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri,
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", info.model_uri,
                             "-p", str(port), "--env-manager", "local", "-w", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=(base / "mlflow.log").open("w"))
    pin(proc.pid, 0)
    try:
        try:
            cold = wait_ready(f"http://127.0.0.1:{port}/ping", proc)
        except SystemExit:
            print((base / "mlflow.log").read_text()[-2000:])
            raise
        for child in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split():
            pin(int(child), 0)
        body = json.dumps({"dataframe_records": X[:1].to_dict(orient="records")}).encode()
        return [measure("mlflow models serve, 1 row", proc,
                        f"http://127.0.0.1:{port}/invocations", body, args.seconds,
                        args.concurrency, cold)]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
