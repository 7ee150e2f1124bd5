"""Logging, registering, aliasing, approving and loading models (SQLite and PostgreSQL)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mloop
from mloop.errors import (
    ConflictError,
    CorruptObjectError,
    InvalidInputError,
    NotFoundError,
    UnsafeModelError,
)


@pytest.fixture(scope="module")
def data():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture
def churn(project, data):
    X, y = data
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    with mloop.start_run(experiment="churn"):
        info = mloop.log_model(model, input_example=X[:5], registered_name="churn")
    return model, info


def test_log_register_alias_load(project, data, churn):
    X, _ = data
    model, info = churn
    assert info.registered.uri == "models:/churn/1" and info.flavor == "sklearn"
    mloop.set_alias("churn", "champion", 1)
    for uri in ("models:/churn@champion", "models:/churn/1", info.uri, "churn"):
        loaded = mloop.load_model(uri)
        np.testing.assert_array_equal(loaded.predict(X[:10]), model.predict(X[:10]))
    assert loaded.signature.names == list(X.columns)
    version = mloop.get_model_version("churn@champion")
    assert version.aliases == ["champion"] and version.status == "registered"
    _, downstream = mloop.lineage.neighbours(project, f"runs:/{info.run_id}")
    assert "models:/churn/1" in [e.dst for e in downstream]


def test_onnx_twin_agrees_with_sklearn(project, data):
    X, y = data
    rf = RandomForestClassifier(30, random_state=0).fit(X, y)
    with mloop.start_run():
        info = mloop.log_model(rf, name="rf", input_example=X[:50], registered_name="rf")
    assert info.onnx, info.onnx_note
    onnx = mloop.load_model("models:/rf/1", engine="onnx")
    np.testing.assert_array_equal(onnx.predict(X), rf.predict(X))
    np.testing.assert_allclose(onnx.predict_proba(X), rf.predict_proba(X), atol=1e-5, rtol=0)


def test_signature_is_enforced_with_errors_naming_the_column(project, data, churn):
    X, _ = data
    loaded = mloop.load_model("models:/churn/1")
    with pytest.raises(InvalidInputError, match=r"missing column.*'mean radius'"):
        loaded.predict(X[:2].drop(columns=["mean radius"]))
    with pytest.raises(InvalidInputError, match="does not take: 'extra'"):
        loaded.predict(X[:2].assign(extra=1))
    with pytest.raises(InvalidInputError, match="'mean area' cannot be read as float64"):
        loaded.predict(X[:2].assign(**{"mean area": ["big", "small"]}))
    as_records = X[:3].to_dict(orient="records")  # records and reordered columns work
    np.testing.assert_array_equal(loaded.predict(as_records), loaded.predict(X[:3]))
    np.testing.assert_array_equal(loaded.predict(X[:3][list(reversed(X.columns))]),
                                  loaded.predict(X[:3]))


def test_governance_and_refusals(project, churn):
    mloop.set_alias("churn", "champion", 1)
    assert mloop.approve_model("churn/1", "passed review").status == "approved"
    with pytest.raises(ConflictError, match="aliased as champion"):
        mloop.delete_model_version("churn/1")
    with pytest.raises(InvalidInputError, match="identifier"):
        mloop.set_alias("churn", "9lives", 1)
    with pytest.raises(NotFoundError, match="No registered model named 'nope'"):
        mloop.load_model("models:/nope/1")
    with pytest.raises(NotFoundError, match="no alias 'gold'"):
        mloop.load_model("models:/churn@gold")
    with pytest.raises(NotFoundError, match="no such version"):
        mloop.get_model_version("churn/7")
    actions = [(e.action, e.version, e.message) for e in mloop.model_events("churn")]
    assert actions[0][:2] == ("registered", 1)
    assert ("approved", 1, "passed review") in actions


class Doubler:
    def predict(self, X):
        return np.asarray(X).sum(axis=1) * 2


def test_python_flavor_and_models_no_flavor_can_save(project):
    with mloop.start_run():
        info = mloop.log_model(Doubler(), name="d", input_example=np.ones((2, 3)),
                               registered_name="doubler")
        with pytest.raises(InvalidInputError, match="No flavor can save"):
            mloop.log_model(object(), name="x")
    assert info.flavor == "python"
    with pytest.raises(UnsafeModelError, match=r"model\.joblib is joblib, a pickle"):
        mloop.load_model("models:/doubler/1")  # a pickle: only when asked for
    loaded = mloop.load_model("models:/doubler/1", allow_pickle=True)
    np.testing.assert_array_equal(loaded.predict([[1, 2, 3]]), [12])
    with pytest.raises(InvalidInputError, match="shape"):
        loaded.predict([[1, 2]])


def test_a_tampered_model_file_is_never_loaded(sqlite_project, data):
    X, y = data
    with mloop.start_run():
        info = mloop.log_model(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
                               input_example=X[:3],
                               onnx=False)
    run = mloop.get_run(info.run_id)
    digest = next(a.digest for a in run.artifacts if a.path.endswith("model.skops"))
    blob = sqlite_project.objects.path(digest)
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CorruptObjectError):
        mloop.load_model(info.uri)


def test_input_example_as_records(project):
    df = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]})
    with mloop.start_run():
        info = mloop.log_model(Doubler(), name="m", input_example=df.to_dict(orient="records"))
    assert info.signature.names == ["a", "b"]
    assert str(info.signature) == "a: int64, b: float64"


def test_the_engine_setting_picks_the_onnx_twin(project, data, churn):
    from mloop.project import Project

    X, _ = data
    auto = Project(project.root, store_uri=project.settings.store_uri, model_engine="auto")
    try:
        loaded = mloop.load_model("models:/churn/1", project=auto)
        assert loaded.engine == "onnx"
        np.testing.assert_array_equal(loaded.predict(X), churn[0].predict(X))
        assert mloop.load_model("models:/churn/1", engine="native", project=auto).engine == \
            "native"
    finally:
        auto.close()
    with pytest.raises(InvalidInputError, match="Unknown engine"):
        mloop.load_model("models:/churn/1", engine="gpu")


class AddOne:
    """A transformer of the user's own: not a type skops vouches for."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X) + 1

    def get_params(self, deep=True):
        return {}

    def set_params(self, **params):
        return self


def test_types_beyond_sklearn_numpy_scipy_need_the_callers_trust(project, data):
    X, y = data
    model = make_pipeline(AddOne(), StandardScaler(), LogisticRegression()).fit(X, y)
    with mloop.start_run():
        info = mloop.log_model(model, name="m", input_example=X[:3], onnx=False)
    own = f"{AddOne.__module__}.AddOne"
    with pytest.raises(UnsafeModelError, match=own):
        mloop.load_model(info.uri)
    loaded = mloop.load_model(info.uri, trusted=[own])
    np.testing.assert_array_equal(loaded.predict(X[:5]), model.predict(X[:5]))
