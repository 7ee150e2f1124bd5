"""``mloop demo``: one small, readable scenario that walks the loop.

It makes a project, versions scikit-learn's bundled breast-cancer table as a dataset and
splits it into a training and a held-out version, trains a few classifiers on the training
split with full tracking (a parent run that reads it, one nested run per candidate that
reads it too, each with a learning curve logged step by step), registers the best from
the nested run that trained it (so lineage reads data → run → model and the card shows its
params and metrics) as the champion and the runner-up as the challenger, then runs the
same training as a cached pipeline twice (the second run restores every step from the
cache), versions the raw table a second time (new and corrected rows), and hands over to
:mod:`mloop.demo_live`: both models tested on the held-out split, a deployment with a
canary of the challenger, patients served through it, part of their outcomes sent back,
a canary analysis and a drift alert. Then it points at the commands, and at ``mloop ui``,
to look at what it recorded. Every page of the web UI has something real to show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mloop.core.ids import short_id
from mloop.project import Project

EXPERIMENT = "demo-breast-cancer"
MODEL = "breast-cancer"
SEED = 42


@dataclass
class DemoResult:
    project_root: Path
    parent_run_id: str
    run_ids: list[str] = field(default_factory=list)
    best_run_id: str = ""
    best_name: str = ""
    best_auc: float = 0.0
    model_uri: str = ""
    challenger_uri: str = ""
    pipeline_run_id: str = ""
    data_versions: list[str] = field(default_factory=list)
    live: Any = None  # mloop.demo_live.LiveResult


def default_demo_dir(cwd: Path | None = None) -> Path:
    """``./mloop-demo``, or the first free ``./mloop-demo-N`` that is not another project."""
    base = (cwd or Path.cwd()) / "mloop-demo"
    candidate, n = base, 1
    while candidate.exists() and not (candidate / ".mloop").is_dir() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"mloop-demo-{n}")
    return candidate


def _candidates() -> dict[str, Any]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    models: dict[str, Any] = {
        f"logreg-C{c:g}": make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))
        for c in (0.01, 1.0, 100.0)
    }
    models["random-forest"] = RandomForestClassifier(n_estimators=100, random_state=SEED,
                                                     n_jobs=1)
    return models


def run_demo(path: Path | None = None, echo: Callable[[str], None] = print, *,
             fresh: bool = False) -> DemoResult:
    """Create a demo project at ``path`` and track a small model selection.

    A folder that already holds the demo is refused (:class:`ConflictError`: running it
    again would register every model twice), unless ``fresh``, which deletes that
    project's ``.mloop`` state first and makes the demo again from scratch."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    import mloop

    root = path or default_demo_dir()
    _start_afresh(root, fresh)
    project = Project.init(root)
    echo(f"Demo project: {project.root}")
    mloop.seed_everything(SEED)
    version = _version_data(project)
    echo(f"Data: {version.ref} ({version.rows} rows, versioned from {version.source_path})")
    train, holdout = _version_splits(project, version.ref)
    echo(f"Split: {train.ref} ({train.rows} rows) to train on, {holdout.ref} "
         f"({holdout.rows} rows) held out for `mloop test`")

    with mloop.start_run(experiment=EXPERIMENT, name="model-selection", project=project,
                         tags={"stage": "demo"}) as parent:
        frame = mloop.data.load(train.ref, project=project)  # records the run's input
        X, y = frame.drop(columns=["target"]), frame["target"]
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.25, random_state=SEED, stratify=y)
        mloop.log_params({"dataset": train.uri, "test_size": 0.25, "seed": SEED})
        result = DemoResult(project.root, parent.id)
        fitted: dict[str, Any] = {}
        for name, model in _candidates().items():
            with mloop.start_run(name=name, nested=True, project=project) as child:
                mloop.log_input(train.ref, project=project)  # lineage: data → this run
                mloop.log_params({"model": type(model).__name__ if not hasattr(model, "steps")
                                  else type(model.steps[-1][1]).__name__,
                                  **{"C" if k.endswith("C") else k: v
                                     for k, v in model.get_params().items()
                                     if k in {"C", "n_estimators", "logisticregression__C"}}})
                fitted[name] = model.fit(X_train, y_train)
                proba = model.predict_proba(X_test)[:, 1]
                pred = (proba >= 0.5).astype(int)
                metrics = {"accuracy": accuracy_score(y_test, pred),
                           "f1": f1_score(y_test, pred), "roc_auc": roc_auc_score(y_test, proba)}
                mloop.log_metrics(metrics)
                _log_learning_curve(model, X_train, y_train)
                mloop.log_dict({"feature_names": list(X.columns)}, "features.json")
                result.run_ids.append(child.id)
                echo(f"  {name:<16} accuracy={metrics['accuracy']:.3f}  "
                     f"f1={metrics['f1']:.3f}  roc_auc={metrics['roc_auc']:.3f}  "
                     f"run {short_id(child.id)}")
        best = mloop.search_runs(experiment=EXPERIMENT,
                                 filter=f"attributes.parent_id = '{parent.id}'",
                                 order_by=["metrics.roc_auc DESC"], max_results=1,
                                 project=project).iloc[0]
        result.best_run_id, result.best_name = best["run_id"], best["name"]
        result.best_auc = float(best["metrics.roc_auc"])
        mloop.set_tag("best_run", result.best_run_id)
        mloop.log_metric("best_roc_auc", result.best_auc)
        # The winner goes to the registry from the nested run that trained it (resumed),
        # so lineage reads data version → run → model version and the card shows that
        # run's params and metrics.
        with mloop.start_run(run_id=result.best_run_id, project=project):
            info = mloop.log_model(fitted[result.best_name], name="model",
                                   input_example=X_test[:5], registered_name=MODEL,
                                   description=f"Best of the demo's model selection "
                                               f"({result.best_name})")
        assert info.registered is not None
        mloop.set_alias(MODEL, "champion", info.registered.version, project=project)
        result.model_uri = info.registered.uri
        second = _register_challenger(project, parent.id, fitted, X_test[:5])
        result.challenger_uri = second.uri
    echo(f"Best: {result.best_name} (roc_auc {result.best_auc:.3f}, "
         f"run {short_id(result.best_run_id)}) → registered as {result.model_uri} "
         f"(alias champion); the runner-up as {result.challenger_uri} (alias challenger)")
    _training_pipeline(project, version.ref, echo, result)
    newer = _new_data_version(project, version.source_path)
    result.data_versions = [version.ref, newer.ref]
    echo(f"\nData again: {newer.ref} ({newer.rows} rows: new patients, re-measured radii)")
    from mloop.demo_live import next_steps, run_live

    echo("\nIn production:")
    result.live = run_live(project, champion=result.model_uri,
                           challenger=result.challenger_uri, holdout=holdout.ref,
                           train=train.ref, echo=echo, seed=SEED)
    echo = _typed_as_run(echo, project.root)  # "mloop …" lines name the mloop to type
    echo("\nNext, try:")
    echo(f"  cd {project.root}")
    echo("  mloop ui     # the whole loop in a browser: runs, data, models, deployments, "
         "monitoring, labelling")
    echo(f"  mloop data show {version.ref}")
    echo(f"  mloop data diff {version.ref} {newer.ref}")
    echo(f"  mloop lineage {version.ref}")
    echo("  mloop experiments list")
    echo(f"  mloop runs list -e {EXPERIMENT} -o 'metrics.roc_auc DESC'")
    echo(f"  mloop runs show {short_id(result.best_run_id)}")
    echo(f"  mloop runs compare {' '.join(short_id(r) for r in result.run_ids[:2])}")
    echo(f"  mloop models show {MODEL}@champion")
    echo(f"  mloop lineage models:/{MODEL}@champion")
    echo(f"  mloop test {MODEL}@champion --data {holdout.ref} --target target")
    echo(f"  mloop models card {MODEL}@champion")
    echo(f"  mloop serve {MODEL}@champion     # then send requests to /predict")
    echo(f"  mloop monitor drift --reference {version.ref} --current serving:{MODEL}")
    echo(f"  mloop pipeline dag {PIPELINE}")
    echo(f"  mloop pipeline run {PIPELINE} --input raw={version.ref} --param C=0.5")
    echo("  mloop pipeline status")
    for line in next_steps(MODEL):
        echo(line)
    return result


PIPELINE = "breast-cancer-training"
PIPELINE_CODE = '''"""The demo's training as a pipeline: split → train → evaluate, each step cached.

Run it with `mloop pipeline run breast-cancer-training --input raw=breast-cancer@latest`;
change a param (--param C=0.5) or a step's code and only what depends on it runs again.
"""

import pandas as pd

import mloop

SEED = 42


@mloop.step(outputs=("train_rows", "test_rows"))
def split(raw: mloop.Dataset, test_size: float = 0.25) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    frame = raw.load()
    return tuple(train_test_split(frame, test_size=test_size, random_state=SEED,
                                  stratify=frame["target"]))


@mloop.step(outputs="model")
def train(train_rows: pd.DataFrame, C: float = 1.0) -> mloop.Model:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = train_rows.drop(columns=["target"]), train_rows["target"]
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=500)).fit(X, y)


@mloop.step(outputs="scores")
def evaluate(model: mloop.Model, test_rows: pd.DataFrame) -> mloop.Report:
    from sklearn.metrics import accuracy_score, roc_auc_score

    X, y = test_rows.drop(columns=["target"]), test_rows["target"]
    scores = {"accuracy": accuracy_score(y, model.predict(X)),
              "roc_auc": roc_auc_score(y, model.predict_proba(X)[:, 1])}
    mloop.log_metrics(scores)
    return scores


training = mloop.Pipeline("breast-cancer-training", steps=[split, train, evaluate])
'''


def _training_pipeline(project: Project, data_ref: str, echo: Callable[[str], None],
                       result: DemoResult) -> None:
    """Write the training pipeline into the project, run it, run it again: all cached."""
    from mloop.pipelines.engine import run_pipeline
    from mloop.pipelines.registry import find_pipeline
    from mloop.repositories.pipelines import PipelineStatus

    path = project.root / "pipelines.py"
    if not path.exists():
        path.write_text(PIPELINE_CODE)
    pipe = find_pipeline(project, PIPELINE)
    echo(f"\nPipeline {PIPELINE} (pipelines.py): {' → '.join(pipe.steps)}")
    for attempt in ("first run", "second run"):
        run = run_pipeline(project, pipe, inputs={"raw": data_ref})
        states = ", ".join(f"{n} {s.status}" for n, s in run.steps.items())
        seconds = ((run.finished_at or run.started_at) - run.started_at) / 1000
        echo(f"  {attempt}: {run.status} in {seconds:.1f} s ({states})")
        if run.status != PipelineStatus.SUCCEEDED:
            echo(f"  {run.error}")
            return
    result.pipeline_run_id = run.id


def _is_demo(root: Path) -> bool:
    """True when ``root`` is a project the demo already filled (its experiment has runs)."""
    from mloop.tracking.experiments import list_experiments

    if not (root / ".mloop" / "config.toml").is_file():
        return False
    project = Project(root)
    try:
        return any(e.name == EXPERIMENT and e.run_count for e in list_experiments(project))
    finally:
        project.close()


def _start_afresh(root: Path, fresh: bool) -> None:
    """Refuse a folder that holds the demo already; with ``fresh``, empty its project."""
    import shutil

    from mloop.errors import ConflictError

    if not _is_demo(root):
        return
    if not fresh:
        raise ConflictError(
            f"{root} already holds the mloop demo; running it again would register every "
            f"model twice. Explore it (cd {root} && {mloop_command()} runs list -e "
            f"{EXPERIMENT}), give another DIRECTORY, or add --fresh to delete its .mloop "
            "folder and make the demo again from scratch.")
    shutil.rmtree(root / ".mloop")


def mloop_command(cwd: Path | None = None) -> str:
    """What to type to run this mloop in a new shell: ``mloop`` when the ``mloop`` on
    PATH is this one and not there only because this shell activated its virtual
    environment, else its full path (``…/.venv/bin/mloop``)."""
    import os
    import shutil
    import sys

    here = Path(sys.argv[0]) if Path(sys.argv[0]).name == "mloop" else None
    if here is None:  # python -m mloop, or mloop.demo from Python
        beside = Path(sys.executable).with_name("mloop")
        here = beside if beside.exists() else None
    if here is None:
        return "mloop"
    here = Path(os.path.abspath(here))
    on_path = shutil.which("mloop")
    venv = os.environ.get("VIRTUAL_ENV")  # on PATH only because this shell activated it
    activated = bool(venv) and here.is_relative_to(os.path.abspath(venv or "/"))
    if on_path and Path(os.path.abspath(on_path)) == here and not activated:
        return "mloop"
    return str(here)


def _typed_as_run(echo: Callable[[str], None], root: Path) -> Callable[[str], None]:
    """``echo`` that prints the command to type instead of a bare ``mloop`` at the start
    of an indented line, and first says how to get a plain ``mloop`` back."""
    command = mloop_command()
    if command == "mloop":
        return echo
    activate = Path(command).with_name("activate")
    if activate.is_file():
        echo(f"\n(mloop is {command}: in a new shell, `source {activate}` lets you type "
             "just mloop.)")

    def say(text: str) -> None:
        echo(f"  {command} {text[len('  mloop '):]}" if text.startswith("  mloop ") else text)

    return say


def _version_data(project: Project) -> Any:
    """Write scikit-learn's bundled breast-cancer table as a CSV and version it."""
    from sklearn.datasets import load_breast_cancer

    import mloop

    frame = load_breast_cancer(as_frame=True).frame
    path = project.root / "data" / "breast_cancer.csv"
    path.parent.mkdir(exist_ok=True)
    if not path.exists():
        frame.to_csv(path, index=False)
    return mloop.data.add(path, name="breast-cancer", message="scikit-learn bundled data",
                          project=project)


def _version_splits(project: Project, ref: str) -> tuple[Any, Any]:
    """The table cut into a training and a held-out version (stratified, 80/20, seeded):
    what the model selection reads, and what ``mloop test`` should measure it on (testing
    on training rows measures memory, and mloop's overlap check says so)."""
    from sklearn.model_selection import train_test_split

    import mloop

    frame = mloop.data.load(ref, project=project)
    train, holdout = train_test_split(frame, test_size=0.2, random_state=SEED,
                                      stratify=frame["target"])
    out = []
    for name, part in ((f"{MODEL}-train", train), (f"{MODEL}-holdout", holdout)):
        path = project.root / "data" / f"{name.replace('-', '_')}.csv"
        if not path.exists():
            part.to_csv(path, index=False)
        out.append(mloop.data.add(path, name=name, message=f"the demo's {name.rsplit('-')[-1]}"
                                  f" split of {ref}", project=project))
    return out[0], out[1]


def _register_challenger(project: Project, parent_id: str, fitted: dict[str, Any],
                         example: Any) -> Any:
    """The runner-up of the selection, registered from its own run as the next version
    with the alias ``challenger``: what the deployment's canary tries against the
    champion."""
    import mloop

    second = mloop.search_runs(experiment=EXPERIMENT,
                               filter=f"attributes.parent_id = '{parent_id}'",
                               order_by=["metrics.roc_auc DESC"], max_results=2,
                               project=project).iloc[1]
    with mloop.start_run(run_id=second["run_id"], project=project):
        info = mloop.log_model(fitted[second["name"]], name="model", input_example=example,
                               registered_name=MODEL,
                               description=f"Runner-up of the demo's model selection "
                                           f"({second['name']}): the challenger")
    assert info.registered is not None
    mloop.set_alias(MODEL, "challenger", info.registered.version, project=project)
    return info.registered


def _new_data_version(project: Project, source: Any) -> Any:
    """The raw table again, as it might come back a month later: a few new patients (noisy
    copies of known ones) and a few radii measured again; versioned as the next version."""
    import numpy as np
    import pandas as pd

    import mloop

    path = project.root / source  # the version's source, relative to the project
    frame = pd.read_csv(path)
    rng = np.random.default_rng(SEED)
    fixed = rng.choice(len(frame), 8, replace=False)
    frame.loc[fixed, "mean radius"] = (frame.loc[fixed, "mean radius"] * 1.02).round(3)
    new = frame.sample(12, random_state=SEED)
    features = new.columns.drop("target")
    new[features] = (new[features] * rng.normal(1.0, 0.03, size=(12, len(features))))\
        .round(5)
    pd.concat([frame, new], ignore_index=True).to_csv(path, index=False)
    return mloop.data.add(path, name="breast-cancer", message="12 new patients; 8 radii "
                          "measured again", project=project)


def _log_learning_curve(model: Any, X: Any, y: Any) -> None:
    """Training accuracy on growing shares of the data: a metric with a history."""
    from sklearn.base import clone

    import mloop

    for step, share in enumerate((0.2, 0.4, 0.6, 0.8, 1.0)):
        n = max(int(len(X) * share), 20)
        fitted = clone(model).fit(X.iloc[:n], y.iloc[:n])
        mloop.log_metric("train_accuracy", float(fitted.score(X.iloc[:n], y.iloc[:n])), step=step)
