"""Experiment tracking, mloop vs MLflow (SQLite backends), on the same work in one run.

(a) N single ``log_metric`` calls inside one run, until durably stored.
(b) creating R runs with 5 params and 5 metrics each.
(c) ``search_runs`` over those R runs with a filter and an order by a metric.
(d) the same search over B runs (mloop only: MLflow would need hours to create them).

Usage: python bench/tracking.py [--smoke] [--no-peer] [--points N] [--runs R] [--big-runs B]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

FILTER = "metrics.acc > 0.9 and params.model = 'logreg'"
ORDER = ["metrics.acc DESC"]
EXPERIMENT = "bench"


def run_values(i: int, rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, float]]:
    params = {"model": ("logreg", "rf", "svm")[i % 3], "C": float(rng.choice([0.1, 1.0, 10.0])),
              "max_iter": 100 + i % 7, "penalty": ("l1", "l2")[i % 2], "seed": i}
    acc = float(rng.uniform(0.5, 1.0))
    metrics = {"acc": acc, "f1": acc * 0.95, "loss": 1 - acc, "auc": min(1.0, acc + 0.02),
               "recall": acc * 0.9}
    return params, metrics


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    return statistics.median(timed(fn) for _ in range(repeat))


# -- mloop -----------------------------------------------------------------------------

class Mloop:
    name = "mloop"

    def __init__(self, root: Path) -> None:
        import mloop

        os.environ["MLOOP_CAPTURE_PACKAGES"] = "1"
        self.mloop = mloop
        self.project = mloop.Project.init(root)
        mloop.set_project(self.project)

    def log_points(self, n: int) -> float:
        m = self.mloop
        with m.start_run(experiment="points"):
            def work() -> None:
                for step in range(n):
                    m.log_metric("loss", 1 / (step + 1), step=step)
                m.flush()  # durably stored: committed to the database
            return timed(work)

    def create_runs(self, count: int, seed: int = 0) -> float:
        m, rng = self.mloop, np.random.default_rng(seed)

        def work() -> None:
            for i in range(count):
                params, metrics = run_values(i, rng)
                with m.start_run(experiment=EXPERIMENT):
                    m.log_params(params)
                    m.log_metrics(metrics)
        return timed(work)

    def search(self) -> int:
        df = self.mloop.search_runs(experiment=EXPERIMENT, filter=FILTER, order_by=ORDER,
                                    max_results=None)
        return len(df)

    def search_page(self) -> int:
        df = self.mloop.search_runs(experiment=EXPERIMENT, filter=FILTER, order_by=ORDER,
                                    max_results=1000)
        return len(df)

    def close(self) -> None:
        self.project.close()
        self.mloop.set_project(None)


# -- MLflow ----------------------------------------------------------------------------

class MLflow:
    name = "MLflow"

    def __init__(self, root: Path) -> None:
        import mlflow

        for noisy in ("alembic", "mlflow"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        self.mlflow = mlflow
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        root.joinpath("artifacts").mkdir(parents=True, exist_ok=True)
        for name in ("points", EXPERIMENT):
            mlflow.create_experiment(name, artifact_location=(root / "artifacts").as_uri())

    def log_points(self, n: int) -> float:
        mf = self.mlflow
        mf.set_experiment("points")
        with mf.start_run():
            def work() -> None:
                for step in range(n):
                    mf.log_metric("loss", 1 / (step + 1), step=step)  # synchronous: durable
            return timed(work)

    def create_runs(self, count: int, seed: int = 0) -> float:
        mf, rng = self.mlflow, np.random.default_rng(seed)
        mf.set_experiment(EXPERIMENT)

        def work() -> None:
            for i in range(count):
                params, metrics = run_values(i, rng)
                with mf.start_run():
                    mf.log_params(params)
                    mf.log_metrics(metrics)
        return timed(work)

    def search(self) -> int:
        df = self.mlflow.search_runs(experiment_names=[EXPERIMENT], filter_string=FILTER,
                                     order_by=ORDER)
        return len(df)

    def close(self) -> None:
        return None


# -- driver ----------------------------------------------------------------------------

def ratio_line(label: str, ours: float, theirs: float | None, unit: str, goal: float) -> str:
    if theirs is None:
        return f"{label:<46} mloop {ours:>9.4f} {unit}   (peer not run)"
    ratio = theirs / ours if ours else float("inf")
    verdict = "meets" if ratio >= goal else "BELOW"
    return (f"{label:<46} mloop {ours:>9.4f} {unit}  MLflow {theirs:>9.4f} {unit}  "
            f"ratio {ratio:>7.1f}x  ({verdict} goal {goal:g}x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument("--no-peer", action="store_true", help="skip MLflow")
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=2_000)
    parser.add_argument("--big-runs", type=int, default=100_000)
    args = parser.parse_args(argv)
    if args.smoke:
        args.points, args.runs, args.big_runs = 200, 30, 300
    peer_ok = not args.no_peer
    if peer_ok:
        try:
            import mlflow  # noqa: F401
        except ImportError:
            print("MLflow is not installed (pip install -e '.[bench]'): peer skipped.")
            peer_ok = False

    with tempfile.TemporaryDirectory(prefix="mloop-bench-") as tmp:
        ours = Mloop(Path(tmp) / "mloop")
        theirs = MLflow(Path(tmp) / "mlflow") if peer_ok else None
        print(f"(a) {args.points:,} log_metric calls, one at a time, until durable")
        a_ours = ours.log_points(args.points)
        a_theirs = theirs.log_points(args.points) if theirs else None
        print(f"(b) creating {args.runs:,} runs with 5 params and 5 metrics")
        b_ours = ours.create_runs(args.runs)
        b_theirs = theirs.create_runs(args.runs) if theirs else None
        print(f"(c) search_runs over {args.runs:,} runs: {FILTER!r} ordered by {ORDER[0]}")
        n_ours = ours.search()
        c_ours = median_time(ours.search, 7)
        c_theirs = None
        if theirs:
            n_theirs = theirs.search()
            assert n_ours == n_theirs, f"result counts differ: mloop {n_ours}, MLflow {n_theirs}"
            c_theirs = median_time(theirs.search, 3)
        print()
        print(ratio_line(f"(a) {args.points:,} log_metric, total", a_ours, a_theirs, "s", 100))
        print(f"    mloop {args.points / a_ours:,.0f} points/s"
              + (f", MLflow {args.points / a_theirs:,.0f} points/s" if a_theirs else ""))
        print(ratio_line(f"(b) {args.runs:,} runs created, total", b_ours, b_theirs, "s", 20))
        print(f"    mloop {args.runs / b_ours:,.0f} runs/s"
              + (f", MLflow {args.runs / b_theirs:,.1f} runs/s" if b_theirs else ""))
        print(ratio_line(f"(c) search over {args.runs:,} runs ({n_ours} hits)", c_ours,
                         c_theirs, "s", 10))
        theirs and theirs.close()

        extra = args.big_runs - args.runs
        print(f"\n(d) mloop alone: adding {extra:,} runs for a {args.big_runs:,}-run search ...")
        d_create = ours.create_runs(extra, seed=1)
        print(f"    created at {extra / d_create:,.0f} runs/s")
        hits = ours.search()
        d_all = median_time(ours.search, 5)
        d_page = median_time(ours.search_page, 5)
        print(f"(d) search over {args.big_runs:,} runs ({hits:,} hits): first page of 1,000 "
              f"{d_page:.4f} s; all {hits:,} rows {d_all:.4f} s (goal < 0.1 s)")
        ours.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
