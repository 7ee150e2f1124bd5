"""Benchmarks are not tests, but they must keep working: run them in tiny smoke mode."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tracking_bench_smoke(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "tracking.py"), "--smoke",
                          "--no-peer"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "(a) 200 log_metric" in out.stdout and "(d) search over 300 runs" in out.stdout


def test_data_bench_smoke(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "data.py"), "--smoke",
                          "--no-peer"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "cache growth / appended bytes" in out.stdout and "mloop --help" in out.stdout
