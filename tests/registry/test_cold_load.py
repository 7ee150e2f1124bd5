"""Loading a model in a fresh process: plain SQL on SQLite (no SQLAlchemy), the Store on
PostgreSQL; same model, same predictions, the same refusals."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mloop
from mloop.core.ids import short_id
from mloop.errors import CorruptObjectError, NotFoundError, RunNotFoundError
from mloop.project import Project

SRC = str(Path(mloop.__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def data():
    return load_breast_cancer(return_X_y=True, as_frame=True)


@pytest.fixture
def logged(project, data):
    X, y = data
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    with mloop.start_run(experiment="cold"):
        info = mloop.log_model(model, input_example=X[:5], registered_name="churn",
                               onnx=False)
    mloop.set_alias("churn", "champion", 1)
    return model, info


def _fresh(project: Project, backend: str) -> Project:
    """The same project as a new process sees it: nothing opened yet."""
    return Project(project.root, **({"store_uri": backend} if backend else {}))


def test_every_uri_form_loads_the_same_model_without_opening_the_store(
        project, backend, data, logged):
    X, _ = data
    model, info = logged
    fresh = _fresh(project, backend)
    try:
        for uri in ("models:/churn/1", "models:/churn@champion", "churn", "churn/1",
                    info.uri, f"runs:/{short_id(info.run_id)}/model"):
            loaded = mloop.load_model(uri, project=fresh)
            np.testing.assert_array_equal(loaded.predict(X[:20]), model.predict(X[:20]))
            assert loaded.signature is not None and loaded.signature.names == list(X.columns)
        # SQLite: the plain sqlite3 layer answered; the SQLAlchemy Store was never opened
        assert ("store" in fresh.__dict__) == bool(backend)
    finally:
        fresh.close()


def test_missing_models_versions_aliases_and_runs_are_named(project, backend, logged):
    _, info = logged
    fresh = _fresh(project, backend)
    try:
        cases = {"models:/nope/1": "No registered model named 'nope'",
                 "models:/churn/7": r"Model 'churn' has no such version \(models:/churn/7\)",
                 "models:/churn@gone": "Model 'churn' has no alias 'gone'",
                 "runs:/" + "0" * 32 + "/model": "No run with id",
                 "runs:/000000000000/model": "No run with id '000000000000'",
                 f"runs:/{info.run_id}/elsewhere": "has no model at 'elsewhere'"}
        for uri, message in cases.items():
            with pytest.raises(NotFoundError, match=message) as err:
                mloop.load_model(uri, project=fresh)
            if uri.startswith("runs:/000000"):
                assert isinstance(err.value, RunNotFoundError)
    finally:
        fresh.close()


def _load_in_subprocess(root: Path, uri: str, rows: str) -> dict:
    code = (
        "import io, json, sys\n"
        "import mloop\n"
        "try:\n"
        f"    model = mloop.load_model({uri!r})\n"
        "    import pandas as pd\n"
        "    rows = pd.read_json(io.StringIO(sys.argv[1]), orient='split')\n"
        "    out = {'pred': model.predict(rows).tolist()}\n"
        "except Exception as exc:\n"
        "    out = {'error': type(exc).__name__, 'message': str(exc)}\n"
        "out['modules'] = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'alembic', 'skops'))\n"
        "print(json.dumps(out))\n")
    env = {"PYTHONPATH": SRC, "MLOOP_QUIET": "1", "PATH": "/usr/bin:/bin",
           "HOME": str(root), "XDG_CONFIG_HOME": str(root / "user-config")}
    done = subprocess.run([sys.executable, "-W", "error", "-c", code, rows], cwd=root,
                          env=env, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_fresh_process_loads_without_sqlalchemy_and_refuses_tampered_files(
        sqlite_project, data):
    X, y = data
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    with mloop.start_run():
        info = mloop.log_model(model, input_example=X[:5], registered_name="churn",
                               onnx=False)
    rows = X[:15].to_json(orient="split")
    out = _load_in_subprocess(sqlite_project.root, "models:/churn/1", rows)
    assert out.get("pred") == model.predict(X[:15]).tolist(), out
    assert out["modules"] == [], out  # neither SQLAlchemy, Alembic nor skops.io
    # one byte of the model file changed in the object store: refused, still no SQLAlchemy
    digest = next(a.digest for a in mloop.get_run(info.run_id).artifacts
                  if a.path.endswith("model.skops"))
    blob = sqlite_project.objects.path(digest)
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-1] + bytes([blob.read_bytes()[-1] ^ 1]))
    out = _load_in_subprocess(sqlite_project.root, "models:/churn/1", rows)
    assert out.get("error") == CorruptObjectError.__name__, out
    assert "sqlalchemy" not in " ".join(out["modules"])


def test_a_tampered_file_is_refused_on_the_plain_sql_path(project, backend, logged):
    _, info = logged
    digest = next(a.digest for a in mloop.get_run(info.run_id).artifacts
                  if a.path.endswith("model.skops"))
    blob = project.objects.path(digest)
    blob.chmod(0o644)
    blob.write_bytes(b"not the model" + blob.read_bytes()[13:])
    fresh = _fresh(project, backend)
    try:
        with pytest.raises(CorruptObjectError):
            mloop.load_model("models:/churn@champion", project=fresh)
    finally:
        fresh.close()
