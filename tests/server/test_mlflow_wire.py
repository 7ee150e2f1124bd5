"""MLflow's wire form and MLmodel handling, without the mlflow client."""

from __future__ import annotations

import math
import re
from pathlib import Path

import httpx
import pytest
from fastapi import Request

from mloop.core.identity import Identity
from mloop.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    ModelNotFoundError,
    ParamConflictError,
    RunNotFoundError,
    TokenError,
    UnsafePathError,
)
from mloop.project import Project
from mloop.server.app import no_auth
from mloop.server.mlflow import make_router, mlmodel, wire
from tests.server.mlflow_serve import serve


@pytest.mark.parametrize(("error", "expected"), [
    (RunNotFoundError("x"), (404, "RESOURCE_DOES_NOT_EXIST")),
    (ModelNotFoundError("x"), (404, "RESOURCE_DOES_NOT_EXIST")),
    (ParamConflictError("x"), (400, "INVALID_PARAMETER_VALUE")),
    (ConflictError("it already exists"), (400, "RESOURCE_ALREADY_EXISTS")),
    (InvalidInputError("x"), (400, "INVALID_PARAMETER_VALUE")),
    (UnsafePathError("x"), (400, "INVALID_PARAMETER_VALUE")),
    (TokenError("x"), (401, "UNAUTHENTICATED")),
    (ForbiddenError("x"), (403, "PERMISSION_DENIED")),
])
def test_mloop_errors_in_mlflow_codes(error: Exception, expected: tuple[int, str]) -> None:
    assert wire.translate(error) == expected  # type: ignore[arg-type]


def test_doubles_and_empty_fields() -> None:
    assert [wire.double(v) for v in (None, math.nan, math.inf, -math.inf, 1.5)] == [
        "NaN", "NaN", "Infinity", "-Infinity", 1.5]
    assert wire.number("NaN", "k") != wire.number("NaN", "k")
    with pytest.raises(wire.MlflowError):
        wire.number(True, "k")
    assert wire.clean({"a": None, "b": [], "c": {}, "d": 0, "e": ""}) == {"d": 0, "e": ""}
    assert wire.integer({"n": "12"}, "n") == 12
    with pytest.raises(wire.MlflowError):
        wire.integer({"n": "x"}, "n")


def test_flavor_meta_of_mlmodels() -> None:
    sk = {"flavors": {"sklearn": {"pickled_model": "model.pkl",
                                  "serialization_format": "cloudpickle"},
                      "python_function": {"loader_module": "mlflow.sklearn"}}}
    assert mlmodel.flavor_meta(sk) == {"serializer": "cloudpickle", "loader": "pickle",
                                       "file": "model.pkl"}
    py = {"flavors": {"python_function": {"python_model": "python_model.pkl"}}}
    assert mlmodel.flavor_meta(py)["file"] == "python_model.pkl"
    escape = {"flavors": {"sklearn": {"pickled_model": "../../etc/passwd",
                                      "serialization_format": "pickle"}}}
    with pytest.raises(InvalidInputError):
        mlmodel.flavor_meta(escape)


def test_mlflow_flavor_needs_allow_pickle() -> None:
    from mloop.registry.flavors import get_flavor

    serializer = get_flavor("mlflow").serializer({"file": "model.pkl",
                                                  "serializer": "cloudpickle"})
    assert serializer.runs_code and serializer.files == ("model.pkl",)
    assert not get_flavor("mlflow").handles(object())


def test_unknown_routes_and_bad_bodies_answer_in_mlflow_form(sqlite_project: Project) -> None:
    with serve(sqlite_project) as url, httpx.Client(base_url=url) as http:
        unknown = http.post("/api/2.0/mlflow/no-such/thing", json={})
        assert (unknown.status_code, unknown.json()["error_code"]) == (
            404, "ENDPOINT_NOT_FOUND")
        bad = http.post("/api/2.0/mlflow/runs/create", content=b"{not json",
                        headers={"content-type": "application/json"})
        assert (bad.status_code, bad.json()["error_code"]) == (400, "BAD_REQUEST")
        missing = http.get("/api/2.0/mlflow/experiments/get", params={})
        assert (missing.status_code, missing.json()["error_code"]) == (
            400, "INVALID_PARAMETER_VALUE")
        info = http.get("/api/3.0/mlflow/server-info").json()
        assert info["multipart_uploads_enabled"] is False


def test_mlflow_writes_are_audited_under_the_callers_name(sqlite_project: Project) -> None:
    def alice(request: Request, need: str) -> Identity:
        return Identity("alice", "writer", "0123456789ab")

    entries: list[tuple[str, str, str, int]] = []
    with serve(sqlite_project, alice,
               lambda who, action, target, status: entries.append(
                   (who.name, action, target, status))) as url, \
            httpx.Client(base_url=url) as http:
        created = http.post("/api/2.0/mlflow/experiments/create", json={"name": "audited"})
        assert created.status_code == 200
        http.get("/api/2.0/mlflow/experiments/get-by-name",
                 params={"experiment_name": "audited"})
        refused = http.post("/api/2.0/mlflow/runs/log-metric", json={
            "run_id": "f" * 32, "key": "m", "value": 1, "timestamp": 0, "step": 0})
        assert refused.status_code == 404
    assert entries[0] == ("alice", "POST /api/2.0/mlflow/experiments/create", "name=audited",
                          200)
    assert entries[1][:2] == ("alice", "POST /api/2.0/mlflow/runs/log-metric")
    assert entries[1][3] == 404 and len(entries) == 2  # reads are not audited


DOC = (Path(__file__).resolve().parents[2] / "docs" / "server-mlflow.md").read_text()
ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/api/[^`]+)` \| (\w+) \|$", re.MULTILINE)


def test_docs_list_every_route_with_its_role(sqlite_project: Project) -> None:
    documented = {(m, p): role for m, p, role in ROW.findall(DOC)}
    served = {(m, r.path) for r in make_router(sqlite_project, no_auth).routes
              for m in r.methods if "{rest:path}" not in r.path}  # type: ignore[attr-defined]
    assert set(documented) == served
    asked: list[str] = []

    def record(request: Request, need: str) -> Identity:
        asked.append(need)
        raise TokenError("recorded")

    with serve(sqlite_project, record) as url, httpx.Client(base_url=url) as http:
        for (method, path), role in sorted(documented.items()):
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            answer = http.request(method, concrete)
            assert answer.status_code == 401, (method, path)
            assert asked.pop() == role, (method, path)


def test_search_filters() -> None:
    from mloop.server.mlflow import filters

    found = filters.clauses("name LIKE 'ch%' AND tag.`mlflow.prompt.is_prompt` != 'true'",
                            ("name",), filters.PROMPT)
    assert found == [("name", "like", "ch%")]
    assert filters.keep(found, {"name": "churn"}) and not filters.keep(found, {"name": "x"})
    assert filters.keep(filters.clauses("name ILIKE 'CH_RN'", ("name",)), {"name": "churn"})
    assert not filters.keep(filters.clauses("name != 'a'", ("name",)), {"name": "a"})
    assert filters.like("50%_off", "50% off") and not filters.like("a.c", "abc")
    for bad in ("tags.team = 'x'", "name = 'a' OR name = 'b'", "name > 'a'"):
        with pytest.raises(wire.MlflowError):
            filters.clauses(bad, ("name",))


def test_text_with_nul_or_lone_surrogates_is_a_400() -> None:
    from mloop.server.mlflow import wire

    for bad in ("\x00abc", "a\ud800b"):
        with pytest.raises(wire.MlflowError) as caught:
            wire.text({"experiment_id": bad}, "experiment_id")
        assert caught.value.status == 400
    assert wire.text({"experiment_id": "héllo"}, "experiment_id") == "héllo"
