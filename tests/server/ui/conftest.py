"""Fixtures of the UI's tests: a demo project built once per test session and copied for
each test module, and a client of its UI (in-process, on loopback's Host)."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mloop.project import Project


def _code_stamp() -> str:
    """Which mloop builds the demo: its folder and its newest source file. Without -n the
    base temp's parent outlives the session (and is shared by every checkout run by one
    user), so a demo made by other code must not be taken for this one's."""
    import hashlib

    import mloop

    package = Path(mloop.__file__).parent
    newest = max(p.stat().st_mtime_ns for p in package.rglob("*.py"))
    return hashlib.sha256(f"{package}:{newest}".encode()).hexdigest()[:12]


def _built_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project, made once for every worker of this test session (a file lock
    lets the first worker build it while the others wait)."""
    shared = tmp_path_factory.getbasetemp().parent
    target = shared / f"ui-demo-{_code_stamp()}"
    with open(shared / "ui-demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".built").exists():
            from mloop.demo import run_demo

            shutil.rmtree(target, ignore_errors=True)
            run_demo(target, echo=lambda line: None)
            (target / ".built").write_text("ok")
    return target


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private copy of the demo project for one test module."""
    source = _built_demo(tmp_path_factory)
    copy = tmp_path_factory.mktemp("ui") / "demo"
    shutil.copytree(source, copy, symlinks=True)
    old = Path.cwd()
    os.chdir(copy)
    try:
        yield copy
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def demo_project(demo_root: Path) -> Iterator[Project]:
    project = Project.open(demo_root)
    try:
        yield project
    finally:
        project.close()


@pytest.fixture(scope="module")
def ui(demo_project: Project) -> Iterator[httpx.Client]:
    """A client of ``mloop ui``'s app over the demo, served by uvicorn on 127.0.0.1."""
    from mloop.server.ui.app import standalone
    from tests.server.live import LiveServer

    with LiveServer(standalone(demo_project)) as served, \
            httpx.Client(base_url=served.url, timeout=60) as client:
        yield client


def csrf_of(html: str) -> str:
    """The CSRF token a page carries (its ``csrf-token`` meta tag)."""
    import re

    match = re.search(r'<meta name="csrf-token" content="([^"]*)">', html)
    assert match, "the page has no CSRF meta tag"
    return match.group(1)
