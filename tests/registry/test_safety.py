"""No code runs from a model file unasked: real hostile files, planted in the registry."""

from __future__ import annotations

import gc
import json
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mloop
from mloop.errors import ConfigError, UnsafeModelError
from mloop.project import Project
from mloop.registry import safety
from mloop.registry.flavors import SklearnFlavor, register_flavor
from tests.registry import hostile

JOBLIB = {"file": "model.joblib", "serializer": "joblib"}
SKOPS = {"file": "model.skops", "serializer": "skops"}


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


# Each way a store can hold a pickle: (manifest's flavor, its flavor_meta, file, bytes).
PICKLES = {
    "sklearn says joblib": ("sklearn", JOBLIB, "model.joblib", hostile.evil_pickle),
    "sklearn says joblib, zlib": ("sklearn", JOBLIB, "model.joblib", hostile.evil_joblib),
    "sklearn says cloudpickle": ("sklearn", {"file": "m.pkl", "serializer": "cloudpickle"},
                                 "m.pkl", hostile.evil_pickle),
    "sklearn names no serializer": ("sklearn", {"file": "m.pkl"}, "m.pkl", hostile.evil_pickle),
    "python flavor": ("python", {"file": "model.joblib"}, "model.joblib", hostile.evil_pickle),
}


def test_harm_is_real(tmp_path: Path, marker: Path) -> None:
    """The hostile files do what they say when loaded naively: the tests below can fail."""
    import joblib

    (tmp_path / "a.joblib").write_bytes(hostile.evil_joblib(marker))
    joblib.load(tmp_path / "a.joblib")
    assert marker.exists()


@pytest.mark.parametrize("case", list(PICKLES))
def test_a_pickle_is_refused_without_the_opt_in(project: Project, marker: Path,
                                                case: str) -> None:
    flavor, meta, file, make = PICKLES[case]
    uri = hostile.plant(project, "evil", {file: make(marker)}, meta, flavor)
    mloop.set_alias("evil", "champion", 1)
    for ref in (uri, "models:/evil@champion", "evil"):
        with pytest.raises(UnsafeModelError) as err:
            mloop.load_model(ref)
        text = str(err.value)
        # names the file, the version and every opt-in
        for part in (file, "models:/evil/1", "allow_pickle=True", "--allow-pickle",
                     "MLOOP_ALLOW_PICKLE=1", "[models] allow_pickle = true",
                     str(Path(project.root).parent / "user-config" / "mloop" / "config.toml")):
            assert part in text, part
        assert err.value.exit_code == 7
    assert not marker.exists()
    mloop.load_model(uri, allow_pickle=True)  # the opt-in is the only thing in the way
    assert marker.exists()


@pytest.fixture
def reopen(project: Project) -> Iterator[Callable[[], Project]]:
    """Opens the same project again (its settings read anew), on the same store."""
    opened: list[Project] = []

    def make() -> Project:
        opened.append(Project(project.root, store_uri=project.settings.store_uri))
        return opened[-1]

    yield make
    for each in opened:
        each.close()


def test_every_opt_in_is_the_users_own(project: Project, marker: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       reopen: Callable[[], Project]) -> None:
    uri = hostile.plant(project, "evil", {"model.joblib": hostile.evil_pickle(marker)}, JOBLIB)
    # a cloned repository's config cannot switch it on: it is an error, and nothing loads
    config = project.root / ".mloop" / "config.toml"
    original = config.read_text()
    config.write_text(original.replace("[models]\n", "[models]\nallow_pickle = true\n"))
    with pytest.raises(ConfigError, match="cannot be set in a project's config"):
        mloop.load_model(uri, project=reopen())
    assert not marker.exists()
    config.write_text(original)
    # an explicit False wins over the environment; the environment switches it on
    monkeypatch.setenv("MLOOP_ALLOW_PICKLE", "1")
    opened = reopen()
    with pytest.raises(UnsafeModelError):
        mloop.load_model(uri, allow_pickle=False, project=opened)
    assert not marker.exists()
    mloop.load_model(uri, project=opened)
    assert marker.exists()
    marker.unlink()
    monkeypatch.delenv("MLOOP_ALLOW_PICKLE")
    # and so does the user's own config file
    user = tmp_path / "user-config" / "mloop" / "config.toml"
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text("[models]\nallow_pickle = true\n")
    mloop.load_model(uri, project=reopen())
    assert marker.exists()


@pytest.mark.parametrize("payload", ["pickle", "joblib", "protocol 0"])
def test_a_pickle_that_claims_to_be_skops_is_refused_even_with_the_opt_in(
        project: Project, marker: Path, payload: str) -> None:
    data = {"pickle": hostile.evil_pickle(marker), "joblib": hostile.evil_joblib(marker),
            "protocol 0": hostile.evil_pickle(marker, protocol=0)}[payload]
    uri = hostile.plant(project, "liar", {"model.skops": data}, SKOPS)
    for allow in (False, True):
        with pytest.raises(UnsafeModelError, match=r"says model.skops is skops, but the file"):
            mloop.load_model(uri, allow_pickle=allow)
    assert not marker.exists()
    # and an ONNX model that is really a pickle
    onnx = hostile.plant(project, "onnx-liar", {"model.onnx": hostile.evil_pickle(marker)},
                         {"file": "model.onnx"}, "onnx")
    with pytest.raises(UnsafeModelError, match="is a pickle"):
        mloop.load_model(onnx, allow_pickle=True)
    assert not marker.exists()


def test_a_manifest_cannot_point_outside_the_model(project: Project, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.joblib"
    outside.write_bytes(pickle.dumps([1]))
    uri = hostile.plant(project, "escape", {"model.skops": b"PK\x03\x04"},
                        {"file": "../../../../elsewhere.joblib", "serializer": "skops"})
    with pytest.raises(UnsafeModelError, match="outside the model's folder"):
        mloop.load_model(uri, allow_pickle=True)


@pytest.mark.parametrize("meta", [
    [], {"flavor_meta": JOBLIB}, {"flavor": 3, "flavor_meta": JOBLIB},
    {"flavor": "sklearn", "flavor_meta": []}, {"flavor": "sklearn", "flavor_meta": {}},
    {"flavor": "sklearn", "flavor_meta": {"serializer": "skops"}},
    {"flavor": "python", "flavor_meta": {"file": 7}},
    {"flavor": "sklearn", "flavor_meta": {"file": "", "serializer": "skops"}},
    {"flavor": "sklearn", "flavor_meta": {"file": "model.joblib\x00", "serializer": "joblib"}},
])
def test_a_malformed_manifest_is_a_clear_refusal(sqlite_project: Project, marker: Path,
                                                 meta: object) -> None:
    uri = hostile.plant_run(sqlite_project, {"model.joblib": hostile.evil_pickle(marker)}, meta)
    with pytest.raises(UnsafeModelError, match=r"Refused to load runs:/"):
        mloop.load_model(uri, allow_pickle=True)
    assert not marker.exists()


def test_skops_files_that_would_run_numpy_code_are_refused(project: Project, marker: Path,
                                                           tmp_path: Path) -> None:
    """'Trust whatever is NumPy's' ran exec (numpy.testing) and rmtree (a DataSource's
    __del__); only scikit-learn's classes and a short list are trusted by default."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    exec_uri = hostile.plant(project, "exec", {"model.skops": hostile.skops_exec(marker)}, SKOPS)
    rm_uri = hostile.plant(project, "rm", {"model.skops": hostile.skops_rmtree(victim)}, SKOPS)
    with pytest.raises(UnsafeModelError, match=r"numpy\.testing\._private\.utils\.runstring"):
        mloop.load_model(exec_uri, allow_pickle=True)  # not a pickle: the opt-in is moot
    with pytest.raises(UnsafeModelError, match=r"numpy\.lib\._datasource\.DataSource"):
        mloop.load_model(rm_uri)
    gc.collect()
    assert not marker.exists() and (victim / "keep.txt").exists()


def test_scikit_learn_models_load_without_any_opt_in(sqlite_project: Project) -> None:
    """What scikit-learn models hold passes the narrowed trust (trees, neighbours, scorers,
    stacking's Bunch, k-means' loop, a spline's SciPy object)."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier, StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import SplineTransformer
    from sklearn.tree import DecisionTreeClassifier

    X, y = make_classification(120, 4, random_state=0)
    models = [
        GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3, scoring="roc_auc"),
        StackingClassifier([("t", DecisionTreeClassifier()), ("k", KNeighborsClassifier())]),
        HistGradientBoostingClassifier(max_iter=5),
        make_pipeline(SplineTransformer(), LogisticRegression()),
    ]
    with mloop.start_run():
        for i, model in enumerate(models):
            model.fit(X, y)
            info = mloop.log_model(model, name=f"m{i}", onnx=False)
            assert mloop.load_model(info.uri).predict(X[:5]).tolist() == \
                model.predict(X[:5]).tolist()


# -- the contract and the words ---------------------------------------------------------

class _Opaque:
    name = "opaque"

    def handles(self, model: object) -> bool:
        return False

    def save(self, model: object, folder: Path) -> dict:
        return {}

    def load(self, folder: Path, meta: dict) -> object:
        return None


def test_a_flavor_must_say_what_its_loading_does() -> None:
    with pytest.raises(Exception, match="serializer"):
        register_flavor(_Opaque())  # type: ignore[arg-type]


def test_show_and_cards_state_the_serializer_honestly(sqlite_project: Project,
                                                      marker: Path) -> None:
    from mloop.registry import card
    from tests.cli.test_cli import run_cli

    project = sqlite_project
    hostile.plant(project, "evil", {"model.joblib": hostile.evil_pickle(marker)}, JOBLIB)
    hostile.plant(project, "liar", {"model.skops": hostile.evil_pickle(marker)}, SKOPS)
    out = run_cli("models", "show", "evil/1", "--json", cwd=project.root)
    shown = json.loads(out.stdout)["serializer"]
    assert shown == {"serializer": "joblib", "runs_code": True, "refused": False,
                     "text": "joblib (pickle: runs code when loaded; needs --allow-pickle)"}
    text = run_cli("models", "show", "liar/1", cwd=project.root).stdout
    assert "skops claimed, but model.skops is a pickle" in " ".join(text.split())
    for fmt in ("md", "html", "hf"):
        rendered = card.render(card.build(project, "evil/1"), fmt)
        assert "runs code when loaded" in rendered
    assert not marker.exists()


# -- the whole class of input -----------------------------------------------------------

_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                       | st.text(max_size=5) | st.binary(max_size=5),
                       lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
                       | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_values, protocol=st.integers(0, pickle.HIGHEST_PROTOCOL),
       compress=st.sampled_from([None, 0, 3, "gzip", "bz2", "xz", "lzma"]))
def test_no_pickle_passes_as_a_safe_format(tmp_path_factory: pytest.TempPathFactory,
                                           value: object, protocol: int,
                                           compress: object) -> None:
    """Any pickle, as pickle or joblib writes it: refused as skops (opt-in or not), refused
    as joblib without the opt-in, and as ONNX whenever its bytes say pickle."""
    import io

    import joblib

    if compress is None:
        data = pickle.dumps(value, protocol=protocol)
    else:
        buf = io.BytesIO()
        joblib.dump(value, buf, compress=compress, protocol=protocol)
        data = buf.getvalue()
    folder = tmp_path_factory.mktemp("m")
    (folder / "m").write_bytes(data)
    flavor = SklearnFlavor()
    for allow in (False, True):
        with pytest.raises(UnsafeModelError):
            safety.check_files(folder, flavor.serializer({"file": "m", "serializer": "skops"}),
                               allow_pickle=allow, source="models:/x/1")
    with pytest.raises(UnsafeModelError, match="allow_pickle=True"):
        safety.check_files(folder, flavor.serializer({"file": "m", "serializer": "joblib"}),
                           allow_pickle=False, source="models:/x/1")
    from mloop.registry.flavors import OnnxFlavor

    seen = safety.sniff(data[:16])
    if protocol >= 2 or compress not in (None, 0):
        assert seen is not None and seen != safety.ZIP
        with pytest.raises(UnsafeModelError):
            safety.check_files(folder, OnnxFlavor().serializer({"file": "m"}),
                               allow_pickle=True, source="models:/x/1")


class Plain:
    def predict(self, X):
        return np.asarray(X).sum(axis=1)


def test_the_opt_in_loads_what_it_should(project: Project) -> None:
    from mloop.registry.models import check_model

    with mloop.start_run():
        info = mloop.log_model(Plain(), name="p", input_example=np.ones((2, 2)),
                               registered_name="plain")

    with pytest.raises(UnsafeModelError):
        check_model(project, "plain/1")
    assert "pickle" in check_model(project, "plain/1", allow_pickle=True)
    loaded = mloop.load_model(info.registered.uri, allow_pickle=True)
    assert loaded.predict([[1, 2]]).tolist() == [3]
