"""Benchmarks are not tests, but they must keep working: run them in tiny smoke mode."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("script", "expected"), [
    ("tracking.py", ["(a) 200 log_metric", "(d) search over 300 runs"]),
    ("data.py", ["cache growth / appended bytes", "mloop --help"]),
    ("registry.py", ["cold: import + load", "warm one-row predict, ONNX engine"]),
    ("evaluation.py", ["(a) fairness over 20,000 predictions", "(b) default suite"]),
    ("serving.py", ["mloop serve, 1 row", "mloop serve --engine onnx, V2 1 row"]),
    ("monitoring.py", ["(a) mloop method='evidently'", "(d) false alarms",
                       "(e) the prediction log"]),
    ("pipelines.py", ["(a) first run, 10 stages", "(b) no-op re-run", "(c) re-run after",
                      "(d) 10 trivial Python steps", "warm is"]),
    ("deployment.py", ["(a) router overhead", "deployment / direct:",
                       "(b) canary of a model that errors", "(b) canary of a model that is",
                       "rolled back after", "(c) blue/green", "(d) bandits",
                       "thompson", "even split", "(e) shadow"]),
    ("ui.py", ["(1) runs page over 300 runs", "mloop ui   GET /ui/runs", "p95",
               "(2) compare of 3 runs", "page sent gzipped", "points in the page's charts"]),
    ("server.py", ["(1) 300 mloop.log_metric calls through mloop server", "per call p50",
                   "(2) the mlflow client", "mloop server / do-nothing",
                   "(3) runs search over 500 runs", "mloop.search_runs over HTTP"]),
    ("federated.py", ["(1) digits, 3 clients IID", "mloop, tracked", "mloop, untracked",
                      "peak PSS, mloop, tracked", "Flower: not run",
                      "(2) rounds to 90% central accuracy", "Dirichlet α=0.5",
                      "(3) 1 of 3 clients send", "FedMedian", "FedTrimmedAvg(beta=0.2)",
                      "Krum(num_malicious=0)", "(4) secure aggregation", "SecAgg overhead",
                      "(5) DP-FedAvg", "noise multiplier 1"]),
])
def test_bench_smoke(tmp_path, script, expected):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--smoke", "--no-peer"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for text in expected:
        assert text in out.stdout
