"""Fixtures of the automation tests: small scikit-learn models on bundled data, a fake
pipeline engine for the fast tests, and a real ``pipelines.py`` for the end-to-end ones."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mloop
from mloop.automation import runner

X, Y = load_breast_cancer(return_X_y=True, as_frame=True)
COLUMNS = list(X.columns[:6])
FRAME = X[COLUMNS].assign(target=Y)
TRAIN, TEST = FRAME.iloc[:380], FRAME.iloc[380:]


def write_yaml(project, text: str) -> Path:
    path = project.root / ".mloop" / "automation.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def add_dataset(project, name: str, frame) -> Any:
    path = project.root / f"{name}.csv"
    frame.to_csv(path, index=False)
    return mloop.data.add(path, name=name, project=project)


def log_model(project, columns: list[str] | None = None, C: float = 1.0) -> str:
    """A logistic regression on ``columns`` of the training rows, logged: its runs:/ URI."""
    cols = columns or COLUMNS
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C)).fit(
        TRAIN[cols], TRAIN.target)
    with mloop.start_run(project=project):
        info = mloop.log_model(model, input_example=TRAIN[cols].head(3), onnx=False)
    return info.uri


@dataclass
class FakeStep:
    status: str = "ran"


@dataclass
class FakeRun:
    """What the engine returns, as much as the automation reads."""

    id: str
    pipeline: str
    status: str = "succeeded"
    error: str | None = None
    models: list[str] = field(default_factory=list)
    steps: dict[str, FakeStep] = field(default_factory=lambda: {"train": FakeStep()})
    trigger: str | None = None

    @property
    def uri(self) -> str:
        return f"pipelines:/{self.pipeline}/{self.id}"


class FakeEngine:
    """Stands in for find_pipeline / run_pipeline; records every run it was asked for."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.status = "succeeded"
        self.models: list[str] = []
        self.hook: Any = None  # called inside the run (e.g. to sleep)

    def find(self, project, name):
        if name == "missing":
            from mloop.errors import NotFoundError

            raise NotFoundError("No pipeline 'missing' in this project.")
        return name

    def run(self, project, auto, pipeline, trigger):
        from mloop.core.ids import new_id

        if self.hook is not None:
            self.hook()
        self.calls.append({"pipeline": pipeline, "trigger": trigger, "params": auto.params,
                           "inputs": auto.inputs})
        return FakeRun(new_id(), pipeline, self.status,
                       "step train failed: boom" if self.status == "failed" else None,
                       list(self.models), trigger=trigger)


@pytest.fixture
def engine(monkeypatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(runner, "_find", fake.find)
    monkeypatch.setattr(runner, "_run", fake.run)
    monkeypatch.setattr(runner, "_check", lambda *_: None)  # its pipelines are names
    return fake


@pytest.fixture
def proj(sqlite_project):
    return sqlite_project


@pytest.fixture
def both(project):
    """The project on SQLite and on PostgreSQL."""
    return project


PIPELINES = """
    import mloop
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    @mloop.step
    def train(raw: mloop.Dataset, C: float = 1.0) -> mloop.Model:
        df = raw.load()
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C))
        return model.fit(df.drop(columns="target"), df.target)

    churn = mloop.Pipeline("churn-training", steps=[train])
"""


def write_pipelines(project, text: str = PIPELINES) -> None:
    (project.root / "pipelines.py").write_text(textwrap.dedent(text))
    for key in [k for k in sys.modules if k.startswith("mloop_user_")]:
        del sys.modules[key]
