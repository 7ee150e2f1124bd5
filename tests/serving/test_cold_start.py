"""`mloop serve` on an embedded project starts on the plain-SQL loading path: the server
process resolves, checks, loads and warms its models without importing SQLAlchemy (about
0.15 s of a cold start)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mloop

SRC = str(Path(mloop.__file__).parent.parent)

CODE = """
import json, sys
from mloop.cli.serve import _preflight
from mloop.project import Project
from mloop.registry.loading import check_model
from mloop.serving.lifecycle import load_all
from mloop.serving.server import ServeConfig
from mloop.serving.state import ServingState

project = Project.open(".")
_preflight(project, ("churn@champion",), None, "127.0.0.1", 0)
check_model(project, "churn@champion", allow_pickle=None)
config = ServeConfig(["churn@champion", "churn"], project=".")
loaded = load_all(ServingState(config))
print(json.dumps({"loaded": [(one.name, one.version, one.uri) for one in loaded],
                  "modules": sorted(m for m in sys.modules
                                    if m.split(".")[0] in ("sqlalchemy", "alembic"))}))
"""


def test_the_server_loads_its_models_without_sqlalchemy(sqlite_project):
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    with mloop.start_run():
        mloop.log_model(model, input_example=X[:5], registered_name="churn", onnx=False)
    mloop.set_alias("churn", "champion", 1)
    env = {"PYTHONPATH": SRC, "MLOOP_QUIET": "1", "PATH": "/usr/bin:/bin",
           "HOME": str(sqlite_project.root), "XDG_CONFIG_HOME": str(sqlite_project.root / "u")}
    done = subprocess.run([sys.executable, "-c", CODE], cwd=sqlite_project.root, env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["loaded"] == [["churn", 1, "models:/churn/1"], ["churn", 1, "models:/churn/1"]]
    assert out["modules"] == []


SETTLE = """
import asyncio, gc, json
from mloop.serving.lifecycle import lifespan
from mloop.serving.server import ServeConfig, create_app

async def frozen(settle):
    app = create_app(ServeConfig(["churn"], project=".", monitor_every=0,
                                 settle_memory=settle))
    async with lifespan(app):
        return gc.get_freeze_count()

print(json.dumps([asyncio.run(frozen(False)), asyncio.run(frozen(True))]))
"""


def test_a_server_process_freezes_what_start_up_made(sqlite_project):
    """`mloop serve` (settle_memory) moves start-up's objects out of the collector's sight:
    full collections under load then walk only what requests make."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with mloop.start_run():
        mloop.log_model(LogisticRegression(max_iter=5000).fit(X[["mean radius"]], y),
                        input_example=X[["mean radius"]][:5],
                        registered_name="churn", onnx=False)
    env = {"PYTHONPATH": SRC, "MLOOP_QUIET": "1", "PATH": "/usr/bin:/bin",
           "HOME": str(sqlite_project.root), "XDG_CONFIG_HOME": str(sqlite_project.root / "u")}
    done = subprocess.run([sys.executable, "-c", SETTLE], cwd=sqlite_project.root, env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    without, settled = json.loads(done.stdout.strip().splitlines()[-1])
    assert without == 0 and settled > 10_000
