"""Every command that loads a model refuses a pickle unasked: serve, worker, batch predict,
evaluation, export. Through the real CLI where there is one (exit 7, before announcing)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mloop
from mloop.errors import UnsafeModelError
from mloop.project import Project
from tests.registry import hostile

JOBLIB = {"file": "model.joblib", "serializer": "joblib"}
ROOT = Path(__file__).resolve().parents[2]


class Sum:
    def predict(self, X):
        return np.asarray(X, dtype=float).sum(axis=1)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def evil(sqlite_project: Project, marker: Path) -> Project:
    """``models:/evil/1`` a pickle that touches ``marker``; ``models:/liar/1`` the same,
    with a manifest that calls it skops."""
    hostile.plant(sqlite_project, "evil", {"model.joblib": hostile.evil_pickle(marker)}, JOBLIB)
    hostile.plant(sqlite_project, "liar", {"model.skops": hostile.evil_pickle(marker)},
                  {"file": "model.skops", "serializer": "skops"})
    return sqlite_project


def _cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    return subprocess.run([sys.executable, "-m", "mloop", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("model", ["models:/evil/1", "evil@champion", "models:/liar/1"])
def test_serve_exits_7_before_announcing(evil: Project, marker: Path, model: str) -> None:
    mloop.set_alias("evil", "champion", 1)
    out = _cli("serve", model, "--port", str(_free_port()), cwd=evil.root)
    assert out.returncode == 7, out.stderr
    assert "Serving" not in out.stderr and "Traceback" not in out.stderr
    assert "Refused to load models:/" in out.stderr
    assert not marker.exists()


def test_serve_refuses_the_opt_in_from_a_cloned_projects_config(evil: Project,
                                                                marker: Path) -> None:
    config = evil.root / ".mloop" / "config.toml"
    config.write_text(config.read_text().replace("[models]\n",
                                                 "[models]\nallow_pickle = true\n"))
    out = _cli("serve", "models:/evil/1", "--port", str(_free_port()), cwd=evil.root)
    assert out.returncode == 2, out.stderr
    assert "cannot be set in a project's config" in out.stderr and "Serving" not in out.stderr
    assert not marker.exists()


def test_worker_and_batch_predict_exit_7(evil: Project, marker: Path) -> None:
    out = _cli("worker", "models:/evil/1", cwd=evil.root)
    assert out.returncode == 7, out.stderr
    assert "Worker for" not in out.stderr and "--allow-pickle" in out.stderr
    table = evil.root / "rows.csv"
    pd.DataFrame({"id": [1, 2], "a": [1.0, 2.0]}).to_csv(table, index=False)
    out = _cli("batch", "predict", "models:/evil/1", "-i", str(table), "-k", "id",
               cwd=evil.root)
    assert out.returncode == 7, out.stderr
    out = _cli("models", "export", "evil/1", "-f", "package", "-o", str(evil.root / "pkg"),
               cwd=evil.root)
    assert out.returncode == 7, out.stderr
    assert not marker.exists()


def test_every_loading_path_of_the_api_refuses(evil: Project, marker: Path) -> None:
    from mloop.registry.export import export_package
    from mloop.serving.broker import open_broker
    from mloop.serving.precompute import batch_predict
    from mloop.serving.worker import Worker

    rows = pd.DataFrame({"id": [1, 2], "a": [1.0, 2.0]})
    rows.to_csv(evil.root / "rows.csv", index=False)
    broker = open_broker("sqlite", evil.root)
    try:
        for i, uri in enumerate(("models:/evil/1", "models:/liar/1")):
            with pytest.raises(UnsafeModelError):
                Worker(evil, uri, broker).run(max_jobs=1)
            with pytest.raises(UnsafeModelError):
                batch_predict(evil, uri, str(evil.root / "rows.csv"), "id", quiet=True)
            with pytest.raises(UnsafeModelError):
                mloop.evaluate(uri, rows.assign(y=[0, 1]), "y")
            with pytest.raises(UnsafeModelError):
                export_package(evil, uri, evil.root / f"pkg{i}")
    finally:
        broker.close()
    assert not marker.exists()


def test_the_opt_in_serves_a_pickled_model(sqlite_project: Project, tmp_path: Path) -> None:
    with mloop.start_run():
        mloop.log_model(Sum(), input_example=pd.DataFrame({"a": [1.0], "b": [2.0]}),
                        registered_name="sum")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    # the pickle names tests.serving…Sum: the server must be able to import it
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "mloop", "serve", "models:/sum/1",
                                 "--port", str(port), "--allow-pickle", "--no-log"],
                                cwd=sqlite_project.root, env=env, stdout=subprocess.DEVNULL,
                                stderr=err)
        try:
            body = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    req = urllib.request.Request(
                        f"http://127.0.0.1:{port}/predict",
                        data=json.dumps({"records": [{"a": 1.0, "b": 2.5}]}).encode(),
                        headers={"content-type": "application/json"})
                    with urllib.request.urlopen(req, timeout=10) as r:
                        body = json.loads(r.read())
                    break
                except OSError:
                    time.sleep(0.2)
            assert body is not None, log.read_text()
            assert body["predictions"] == [3.5]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert "Serving models:/sum/1" in log.read_text()


def test_a_worker_keeps_its_model_when_the_alias_moves_to_a_pickle(
        evil: Project, marker: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sklearn.linear_model import LogisticRegression

    from mloop.serving.broker import open_broker
    from mloop.serving.worker import Worker

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    with mloop.start_run():
        good = mloop.log_model(LogisticRegression().fit(X, [0, 0, 1, 1]), input_example=X,
                               registered_name="evil", onnx=False).registered
    mloop.set_alias("evil", "champion", good.version)
    broker = open_broker("sqlite", evil.root)
    try:
        worker = Worker(evil, "models:/evil@champion", broker, follow=0.1)
        assert worker.model()[0] == good.uri
        mloop.set_alias("evil", "champion", 1)  # version 1 is the planted pickle
        time.sleep(0.15)
        assert worker.model()[0] == good.uri
    finally:
        broker.close()
    assert "cannot be loaded: Refused to load models:/evil/1" in capsys.readouterr().err
    assert not marker.exists()
