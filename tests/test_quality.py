"""Lint and type checks are part of the suite, so CI fails on either."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", name, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_ruff_clean():
    out = _tool("ruff", "check", "src", "tests", "bench")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_clean():
    out = _tool("mypy")
    assert out.returncode == 0, out.stdout + out.stderr
