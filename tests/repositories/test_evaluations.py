"""The Evaluations contract: recorded tests of models, the latest and by model."""

from __future__ import annotations

import pytest

from mloop import repositories
from mloop.core.ids import new_id
from mloop.errors import ConflictError
from mloop.project import Project
from mloop.repositories.evaluations import Evaluation, Evaluations


def _evaluation(model_uri: str = "models:/churn/1", *, data: str = "data:/test@1",
                passed: bool = True, created_at: int = 1_000) -> Evaluation:
    return Evaluation(new_id(), model_uri, None, data, "default", passed, "ab" * 32, "me",
                      created_at)


@pytest.fixture
def evaluations(project: Project) -> Evaluations:
    return repositories.backend(project).evaluations


def test_add_and_read_the_latest(evaluations: Evaluations) -> None:
    assert evaluations.latest("models:/churn/1") is None
    old = _evaluation(passed=False)
    new = _evaluation(created_at=2_000)
    evaluations.add(old)
    evaluations.add(new)
    evaluations.add(_evaluation("models:/churn/2", created_at=3_000))
    assert evaluations.latest("models:/churn/1") == new
    assert new.summary() == {"id": new.id, "passed": True, "suite": "default",
                             "data": "data:/test@1", "user": "me", "created_at": 2_000,
                             "report": "ab" * 32}


def test_of_models_newest_first(evaluations: Evaluations) -> None:
    a = _evaluation("models:/churn/1", created_at=1_000)
    b = _evaluation("runs:/r1/model", created_at=2_000)
    c = _evaluation("models:/churn/2", created_at=3_000)
    for e in (a, b, c):
        evaluations.add(e)
    assert evaluations.of_models(["models:/churn/1", "runs:/r1/model"]) == [b, a]
    assert evaluations.of_models(["models:/churn/1", "runs:/r1/model"], limit=1) == [b]
    assert evaluations.of_models(["models:/nope/1"]) == []


def test_an_id_is_recorded_once(evaluations: Evaluations) -> None:
    first = _evaluation()
    evaluations.add(first)
    with pytest.raises(ConflictError):
        evaluations.add(first)
    assert evaluations.of_models([first.model_uri]) == [first]
