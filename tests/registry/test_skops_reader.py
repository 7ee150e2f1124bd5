"""The sklearn flavor's fast path: skops files read without importing ``skops.io``, with the
same predictions and the same refusals."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mloop
from mloop.errors import CorruptObjectError, UnsafeModelError
from mloop.project import Project
from mloop.registry import skops_reader
from tests.registry import hostile

SKOPS = {"file": "model.skops", "serializer": "skops"}


@pytest.fixture
def no_skops_io(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import skops.io`` fails: whatever loads must do so on the fast path."""
    monkeypatch.setitem(sys.modules, "skops.io", None)


def _models() -> dict[str, Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeRegressor

    return {
        "scaler + logistic": make_pipeline(StandardScaler(), LogisticRegression()),
        "forest": RandomForestClassifier(5, random_state=0),
        "boosting (losses)": GradientBoostingClassifier(n_estimators=3),
        "sgd (a loss object)": SGDClassifier(loss="modified_huber", random_state=0),
        "one-hot (object arrays)": make_pipeline(
            ColumnTransformer([("oh", OneHotEncoder(), ["c"])], remainder="passthrough"),
            LogisticRegression()),
        "svc": SVC(probability=True, random_state=0),
        "tree regressor": DecisionTreeRegressor(max_depth=3),
        "a NumPy ufunc": make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()),
    }


def _data(n: int = 60, seed: int = 0) -> tuple[Any, Any]:
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.random((n, 3)), columns=["a", "b", "d"])
    X["c"] = np.where(X["a"] > 0.5, "hi", "lo")
    y = (X["a"] + rng.normal(0, 0.2, n) > 0.5).astype(int)
    return X, y


def _same(a: Any, b: Any, X: Any) -> None:
    assert np.array_equal(a.predict(X), b.predict(X))
    if hasattr(b, "predict_proba"):
        assert np.array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize("name", list(_models()))
def test_the_fast_path_gives_skops_predictions(sqlite_project: Project, name: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import skops.io as sio

    from mloop.registry.safety import skops_trusted

    model = _models()[name]
    X, y = _data()
    X = X if "one-hot" in name else X.drop(columns="c")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence on tiny data is not the point
        model.fit(X, y)
    with mloop.start_run():
        info = mloop.log_model(model, input_example=X[:5], onnx=False)
    folder = sqlite_project.root / "m"
    mloop.tracking.artifacts.download(sqlite_project, info.run_id, "model", folder)
    manifest = json.loads((folder / "model" / "mloop-model.json").read_text())
    path = folder / "model" / "model.skops"
    assert manifest["flavor_meta"]["types"] == skops_reader.types_in(path)
    reference = sio.load(path, trusted=skops_trusted(path))
    monkeypatch.setitem(sys.modules, "skops.io", None)
    loaded = mloop.load_model(info.uri)
    assert type(loaded.model) is type(model)
    _same(loaded.model, reference, X)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), n=st.integers(8, 80), depth=st.integers(1, 6))
def test_fast_and_skops_agree_on_any_forest(tmp_path_factory: pytest.TempPathFactory,
                                            seed: int, n: int, depth: int) -> None:
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    X, y = _data(n, seed)
    X = X.drop(columns="c")
    y.iloc[0], y.iloc[1] = 0, 1  # two classes, whatever the draw
    model = RandomForestClassifier(3, max_depth=depth, random_state=seed).fit(X, y)
    path = tmp_path_factory.mktemp("forest") / "m.skops"
    sio.dump(model, path)
    fast = skops_reader.load(path, (), skops_reader.types_in(path))
    _same(fast, model, X)


def test_loading_does_not_import_skops_io(sqlite_project: Project) -> None:
    """In a fresh process, as `mloop serve` and a cold load_model run."""
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    X = X.drop(columns="c")
    with mloop.start_run():
        mloop.log_model(LogisticRegression().fit(X, y), input_example=X[:3], onnx=False,
                        registered_name="churn")
    code = ("import sys, mloop, pandas as pd\n"
            "m = mloop.load_model('models:/churn/1')\n"
            "print(m.predict(pd.DataFrame([[0.1, 0.9, 0.4]], columns=['a', 'b', 'd']))[0],"
            " 'skops.io' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=sqlite_project.root, check=True,
                         capture_output=True, text=True)
    assert out.stdout.split() == ["0", "False"], out.stderr


# -- refusals on the fast path ----------------------------------------------------------

def _object(module: str, cls: str, ident: int = 2) -> dict[str, Any]:
    return {"__class__": cls, "__module__": module, "__loader__": "ObjectNode", "__id__": ident}


@pytest.mark.parametrize(("schema", "named"), [
    (_object("subprocess", "Popen"), "subprocess.Popen"),
    ({"__class__": "list", "__module__": "builtins", "__loader__": "ListNode",
      "content": [{"__class__": "system", "__module__": "os", "__loader__": "FunctionNode",
                   "__id__": 3}]}, "os.system"),
    ({"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
      "content": {"x": {"__class__": "Path", "__module__": "pathlib",
                        "__loader__": "TypeNode", "__id__": 3}},
      "key_types": {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode",
                    "content": [{"__class__": "str", "__module__": "builtins",
                                 "__loader__": "TypeNode", "__id__": 4}], "__id__": 5}},
     "pathlib.Path"),
])
def test_an_untrusted_name_is_refused_without_skops(project: Project, no_skops_io: None,
                                                     schema: dict[str, Any],
                                                     named: str) -> None:
    uri = hostile.plant(project, "evil", {"model.skops": hostile._skops(schema)}, SKOPS)
    with pytest.raises(UnsafeModelError, match=named.replace(".", r"\.")) as err:
        mloop.load_model(uri)
    assert f"trusted=['{named}']" in str(err.value)


def test_numpy_harm_is_still_refused_without_skops(project: Project, no_skops_io: None,
                                                   tmp_path: Path) -> None:
    """A NumPy name skops might trust goes to skops.io; when it cannot be imported, the
    load fails rather than trusting the name."""
    victim = tmp_path / "victim"
    victim.mkdir()
    uri = hostile.plant(project, "rm", {"model.skops": hostile.skops_rmtree(victim)}, SKOPS)
    with pytest.raises(ImportError):
        mloop.load_model(uri)
    assert victim.exists()


def _real_skops(project: Project, extra_types: list[str] | None = None) -> tuple[str, Any]:
    """A logistic regression planted with its real skops file; (URI, the model)."""
    import io

    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    model = LogisticRegression().fit(X.drop(columns="c"), y)
    buf = io.BytesIO(sio.dumps(model))
    with zipfile.ZipFile(buf) as archive:
        types = skops_reader.types_of(json.loads(archive.read("schema.json")))
    listed = sorted(types) if extra_types is None else extra_types
    return hostile.plant(project, "lr", {"model.skops": buf.getvalue()},
                         {**SKOPS, "types": listed}), model


def test_a_file_naming_types_its_manifest_does_not_is_refused(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    uri, _ = _real_skops(project, extra_types=["builtins.dict"])
    monkeypatch.setitem(sys.modules, "skops.io", None)
    with pytest.raises(UnsafeModelError, match="manifest does not list"):
        mloop.load_model(uri)


def test_a_malformed_type_list_is_refused(project: Project,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    uri, _ = _real_skops(project, extra_types={"a": 1})  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "skops.io", None)
    with pytest.raises(UnsafeModelError, match="form mloop does not write"):
        mloop.load_model(uri)


def test_a_tampered_file_is_refused_before_it_is_read(project: Project,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    uri, model = _real_skops(project)
    monkeypatch.setitem(sys.modules, "skops.io", None)
    X, _ = _data()
    assert np.array_equal(mloop.load_model(uri).predict(X.drop(columns="c")),
                          model.predict(X.drop(columns="c")))
    version = mloop.get_model_version(uri)
    digest = next(a.digest for a in mloop.tracking.artifacts.list_artifacts(
        project, version.run_id, "model") if a.path.endswith("model.skops"))
    path = project.objects.path(digest)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises((CorruptObjectError, UnsafeModelError)):
        mloop.load_model(uri)


def test_the_cli_loads_and_refuses_on_the_fast_path(sqlite_project: Project,
                                                    tmp_path: Path) -> None:
    """`mloop batch predict` scores with the fast path's model and refuses an untrusted
    name with exit 7, naming it."""
    import os

    project = sqlite_project
    uri, model = _real_skops(project)
    X, _ = _data()
    X = X.drop(columns="c")
    table = tmp_path / "rows.csv"
    X.assign(id=range(len(X))).to_csv(table, index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_PROJECT")}
    run = [sys.executable, "-m", "mloop", "batch", "predict"]
    out = subprocess.run([*run, uri, "-i", str(table), "-k", "id"], cwd=project.root, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = [mloop.lookup("lr", i)["prediction"] for i in (0, 7, 33)]
    assert got == model.predict(X.iloc[[0, 7, 33]]).tolist()
    evil = hostile.plant(project, "evil", {"model.skops": hostile._skops(
        _object("subprocess", "Popen"))}, SKOPS)
    out = subprocess.run([*run, evil, "-i", str(table), "-k", "id"], cwd=project.root,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 7 and "subprocess.Popen" in out.stderr, out.stderr
