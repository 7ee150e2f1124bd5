"""The repository holds source: no large files, no benchmark output, no pickles.

A megabyte of random bytes (``a.bin``) and 4.8 MB of MLflow benchmark output with
pickled models (``mlruns/``) were once committed. These tests fail when a tracked file
reaches 512 KiB (images for the docs are the listed exceptions) or when anything a
benchmark or a peer tool writes is tracked.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 512 * 1024
# Large files that belong in the repository, each named on purpose (paths from the root).
LARGE_FILE_EXCEPTIONS: frozenset[str] = frozenset()
# Folders that only benchmarks and the peer tools they run write to.
OUTPUT_FOLDERS = ("bench/.work", "bench/.peers")
OUTPUT_NAMES = frozenset({"mlruns", "mlartifacts"})
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib"})


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def tracked() -> list[str]:
    """Every path git tracks here; skips outside a git checkout of this repository."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    top = _git("rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != ROOT.resolve():
        pytest.skip(f"{ROOT} is not a git checkout (e.g. an unpacked sdist)")
    return [p for p in _git("ls-files", "-z").stdout.split("\0") if p]


def test_no_tracked_file_is_large(tracked):
    large = []
    for path in tracked:
        file = ROOT / path
        if path not in LARGE_FILE_EXCEPTIONS and file.is_file() \
                and file.stat().st_size >= MAX_BYTES:
            large.append(f"{path} ({file.stat().st_size:,} bytes)")
    assert not large, ("Tracked files of 512 KiB or more (remove them, or add a docs image "
                       f"to LARGE_FILE_EXCEPTIONS): {large}")


def test_exceptions_are_still_needed(tracked):
    """An exception for a file that is gone or small is a hole for the next one."""
    for path in LARGE_FILE_EXCEPTIONS:
        assert path in tracked and (ROOT / path).stat().st_size >= MAX_BYTES, path


def _is_output(path: str) -> bool:
    pure = PurePosixPath(path)
    return (any(path == f or path.startswith(f + "/") for f in OUTPUT_FOLDERS)
            or any(part in OUTPUT_NAMES for part in pure.parts[:-1])
            or pure.suffix.lower() in PICKLE_SUFFIXES)


def test_no_benchmark_output_or_pickle_is_tracked(tracked):
    found = [p for p in tracked if _is_output(p)]
    assert not found, f"Benchmark output or pickles are tracked: {found[:20]}"


@pytest.mark.parametrize("path", ["bench/.work/x.db", "bench/.peers/evidently/bin/python",
                                  "mlruns/0/abc/artifacts/model/model.pkl",
                                  "mlartifacts/1/model.pkl"])
def test_benchmark_outputs_are_ignored(tracked, path):
    out = _git("check-ignore", "-q", "--no-index", path)
    assert out.returncode == 0, f"{path} is not ignored by .gitignore"


@pytest.mark.parametrize(("path", "output"), [
    ("bench/.work/a", True), ("bench/.peers", True), ("x/mlruns/0/meta.yaml", True),
    ("mlartifacts/m", True), ("src/model.PKL", True), ("a.joblib", True),
    ("bench/work.py", False), ("docs/mlruns.md", False), ("src/mloop/pickles.py", False),
])
def test_output_rule(path, output):
    """The rule the check above applies, on paths that are and are not output."""
    assert _is_output(path) is output
