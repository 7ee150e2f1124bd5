"""The published OpenAPI schema, and schemathesis over every operation of the server: no 5xx.

The whole server as ``mloop server`` builds it (:func:`mloop.server.main.build_app`, real
token auth with an admin token, a few seeded records) runs on uvicorn on 127.0.0.1;
schemathesis loads ``/openapi.json`` from it, plus a description of the routes kept out of
it (the MLflow REST subset, the login form), and for every operation sends a bounded
number of generated requests, valid and invalid, derandomized so that a run is
reproducible (MLOOP_FUZZ_EXAMPLES / MLOOP_FUZZ_SEED explore further). Every answer must
be below 500; a 4xx of the API must be its error body (``{"error": {"code", "message"}}``,
MLflow's ``{"error_code", "message"}`` on its routes) and match the published 4XX schema;
a 200 must match the result schema published. All failures are gathered and reported
together, with the server's exception and a ``curl`` to reproduce each.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from mloop.project import Project
from mloop.server import tokens
from mloop.server.main import ServerConfig, build_app
from tests.server.live import LiveServer

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

pytestmark = pytest.mark.slow

# Generated requests per operation and mode (positive / negative), derandomized: the same
# requests on every run. MLOOP_FUZZ_EXAMPLES and MLOOP_FUZZ_SEED explore further by hand.
# PostgreSQL gets fewer: the same handlers, only the store's own refusals differ.
EXAMPLES = int(os.environ.get("MLOOP_FUZZ_EXAMPLES", "8"))
SEED = os.environ.get("MLOOP_FUZZ_SEED")


_APPS: dict[str, Any] = {}  # served URL → its app (for the routes outside the schema)


@pytest.fixture
def served(project: Project) -> Iterator[tuple[str, dict[str, str]]]:
    """The full server over ``project`` (SQLite and PostgreSQL): its URL and admin headers."""
    token, _, _ = tokens.create(project, "fuzz", "admin")
    _seed(project)
    app = build_app(ServerConfig(root=str(project.root)), project)
    with LiveServer(app) as live:
        _APPS[live.url] = app
        yield live.url, {"Authorization": f"Bearer {token}"}
        del _APPS[live.url]
    asyncio.run(_shut_down(app))  # the audit writer's thread, as `mloop server` does


def _seed(project: Project) -> None:
    """Records under the names and ids generated values hit most often ("", "0"), so that
    requests reach the code past "not found": runs with params, metrics and artifacts, a
    model version with an alias."""
    from mloop.core.owner import this_process
    from mloop.repositories import backend
    from mloop.repositories.runs import ArtifactInfo, NewRun

    repos = backend(project)
    experiment = repos.experiments.get_or_create("0")
    for run_id in ("", "0"):
        repos.runs.create(NewRun(run_id, experiment.id, "0", 1, None, "0", "0", 0, None, None,
                                 False, None, None), this_process(), tags={"0": "0"})
        repos.runs.log_params(run_id, {"0": "0", "": ""})
        repos.runs.write_points([(run_id, "0", 0, 1, 0.5), (run_id, "", 1, 2, None)])
        repos.runs.record_artifacts(run_id, [ArtifactInfo("0", 1, "0" * 64)])
    repos.models.register("0", run_id="0", artifact_path="0", manifest="{}",
                          flavor="sklearn", description=None, message=None)
    repos.models.set_alias("0", "0", 1)


async def _shut_down(app: Any) -> None:
    async with app.router.lifespan_context(app):
        pass


def test_the_schema_is_published(served: tuple[str, dict[str, str]]) -> None:
    import httpx

    url, _ = served
    schema = httpx.get(f"{url}/openapi.json", timeout=30).json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert "/api/v1/runs/create" in paths and "/api/v1/objects/{digest}" in paths
    body = paths["/api/v1/runs/write_points"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["required"]
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    errors = paths["/api/v1/runs/get"]["post"]["responses"]["4XX"]["content"]
    assert errors["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert schema["components"]["schemas"]["Error"]["required"] == ["error"]


def _error_body(response: Any) -> str | None:
    """Why a 4xx answer is not the API's error body (None when it is); the MLflow routes
    answer MLflow's ``{"error_code", "message"}``."""
    if response.request.method == "HEAD" or response.status_code in (304,):
        return None
    try:
        body = response.json()
    except ValueError:
        return f"a {response.status_code} whose body is not JSON: {response.text[:200]!r}"
    if "/mlflow" in response.request.url and isinstance(body, dict) and \
            isinstance(body.get("error_code"), str) and isinstance(body.get("message"), str):
        return None  # (a path no route matches, e.g. with a line break, answers mloop's)
    error = body.get("error") if isinstance(body, dict) else None
    if not (isinstance(error, dict) and isinstance(error.get("code"), str)
            and isinstance(error.get("message"), str)):
        return f"a {response.status_code} without {{error: {{code, message}}}}: {body!r:.200}"
    return None


class _ServerErrors(logging.Handler):
    """The exceptions the server logs as internal errors, for the failure report."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            frames = [f for f in traceback.extract_tb(exc.__traceback__)
                      if "/mloop/" in f.filename and "/server/" not in f.filename]
            where = f" at {frames[-1].filename.rpartition('/mloop/')[2]}:{frames[-1].lineno}" \
                if frames else ""
            self.seen.append(f"{type(exc).__name__}{where}: {str(exc)[:300]}")


def _validators(schema: dict[str, Any], operation: Any) -> dict[str, Any]:
    """JSON Schema (2020-12) validators of an operation's documented JSON answers, by
    status ("200", "4XX"). (schemathesis 4.32's own response check misreads the
    ``prefixItems`` of OpenAPI 3.1 tuples, so the published schema is applied directly.)"""
    import jsonschema

    found = {}
    answers = schema["paths"][operation.path][operation.method.lower()]["responses"]
    for status in ("200", "4XX"):
        body = answers.get(status, {}).get("content", {}).get("application/json", {})
        if body.get("schema"):
            found[status] = jsonschema.Draft202012Validator(
                {**body["schema"], "components": schema["components"]})
    return found


def _mismatch(validator: Any, body: Any) -> str | None:
    error = next(iter(validator.iter_errors(body)), None)
    if error is None:
        return None
    return (f"the answer does not match its schema at "
            f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message[:300]}")


def _fuzz(operation: Any, url: str, headers: dict[str, str], session: Any, mode: Any,
          validators: dict[str, Any], errors: _ServerErrors, examples: int) -> str | None:
    """Run one operation's generated requests; a description of the first failure."""
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis.errors import Unsatisfiable

    found: list[str] = []
    strategy = operation.as_strategy(generation_mode=mode)

    @seed(int(SEED or 0))
    @settings(max_examples=examples, deadline=None, derandomize=SEED is None, database=None,
              phases=[Phase.explicit, Phase.generate], print_blob=False,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(base_url=url, session=session, headers=headers, timeout=60)
        problem = None
        if response.status_code >= 500:
            cause = errors.seen[-1] if errors.seen else response.text[:300]
            problem = f"{response.status_code}: {cause}"
        elif response.status_code >= 400 and operation.path.startswith("/api/"):
            problem = _error_body(response)  # (the login pages answer HTML)
            if problem is None and "4XX" in validators:
                problem = _mismatch(validators["4XX"], response.json())
        elif response.status_code == 200 and "200" in validators:
            problem = _mismatch(validators["200"], response.json())
        if problem is not None and not found:
            found.append(f"{operation.label} ({mode.name.lower()}): {problem}\n    "
                         f"{case.as_curl_command(headers=headers)[:1500]}")

    try:
        run()
    except Unsatisfiable:  # nothing to negate (an operation without a JSON body)
        assert mode.name == "NEGATIVE", operation.label
    return found[0] if found else None


# The MLflow REST subset is MLflow's protocol, kept out of mloop's OpenAPI document; its
# routes are fuzzed with this description: every field the mlflow client sends (see
# ../shared/reference/mlflow-rest-subset.md), optional, on every route, so that each
# handler meets its own fields with values of the right and (negative) wrong types.
_TEXT = ("run_id", "run_uuid", "experiment_id", "experiment_name", "name", "new_name", "key",
         "run_name", "user_id", "status", "filter", "page_token", "source", "alias",
         "version", "description", "model_id", "source_run_id", "model_type",
         "artifact_location", "run_view_type", "view_type", "metric_key", "path",
         "tag_key", "stage")
_INTEGER = ("timestamp", "step", "start_time", "end_time", "max_results")
_PAIRS = {"type": "array", "items": {"type": "object", "properties": {
    "key": {"type": "string"}, "value": {"type": "string"}}}}
_BODY: dict[str, Any] = {
    **{name: {"type": "string"} for name in _TEXT},
    **{name: {"type": "integer"} for name in _INTEGER},
    "value": {"anyOf": [{"type": "number"}, {"type": "string"}]},
    "experiment_ids": {"type": "array", "items": {"type": "string"}},
    "order_by": {"type": "array", "items": {"type": "string"}},
    "tags": _PAIRS, "params": _PAIRS,
    "metrics": {"type": "array", "items": {"type": "object", "properties": {
        "key": {"type": "string"}, "value": {"type": "number"},
        "timestamp": {"type": "integer"}, "step": {"type": "integer"}}}},
    "datasets": {"type": "array", "items": {"type": "object", "properties": {
        "tags": _PAIRS, "dataset": {"type": "object", "properties": {
            name: {"type": "string"} for name in ("name", "digest", "source_type", "source",
                                                  "schema", "profile")}}}}},
    "models": {"type": "array", "items": {"type": "object", "properties": {
        "model_id": {"type": "string"}, "step": {"type": "integer"}}}},
}


def _unpublished_schema(app: Any) -> dict[str, Any]:
    """An OpenAPI document of the app's routes outside /openapi.json: the MLflow routes,
    the login page's form."""
    from fastapi.routing import APIRoute

    def walk(routes: list[Any]) -> Iterator[Any]:  # into included routers too
        for route in routes:
            inner = getattr(route, "original_router", None)
            yield from walk(inner.routes) if inner is not None else (route,)

    paths: dict[str, Any] = {}
    for route in walk(app.routes):
        if not isinstance(route, APIRoute) or "/mlflow" not in route.path or \
                "{rest:path}" in route.path:
            continue
        path = route.path.replace(":path}", "}")
        names = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        for method in sorted(route.methods):
            operation: dict[str, Any] = {"responses": {"200": {"description": "OK"}},
                                         "parameters": [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in names]}
            if method == "GET" and "{path}" not in path:
                operation["parameters"] += [
                    {"name": n, "in": "query", "schema": schema} for n, schema in _BODY.items()
                    if schema.get("type") in ("string", "integer")]
            elif method == "PUT":
                operation["requestBody"] = {"content": {"application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"}}}}
            elif method != "GET":
                operation["requestBody"] = {"required": True, "content": {"application/json": {
                    "schema": {"type": "object", "properties": _BODY}}}}
            paths.setdefault(path, {})[method.lower()] = operation
    form = {"requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "properties": {n: {"type": "string"} for n in ("token", "next",
                                                                        "csrf")}}}}},
            "responses": {"200": {"description": "OK"}}}
    paths["/login"] = {"post": form, "get": {"responses": {"200": {"description": "OK"}},
                                             "parameters": [{"name": "next", "in": "query",
                                                             "schema": {"type": "string"}}]}}
    paths["/logout"] = {"post": form}
    return {"openapi": "3.1.0", "info": {"title": "mloop's other routes", "version": "1"},
            "paths": paths}


def test_no_operation_answers_a_server_error(project: Project,
                                            served: tuple[str, dict[str, str]]) -> None:
    import requests
    from schemathesis import GenerationMode

    url, headers = served
    postgres = project.settings.store_uri.startswith("postgresql")
    examples = max(1, EXAMPLES // 2) if postgres else EXAMPLES
    published = requests.get(f"{url}/openapi.json", timeout=30).json()
    others = _unpublished_schema(_APPS[url])
    schemas = [(schemathesis.openapi.from_url(f"{url}/openapi.json"), published),
               (schemathesis.openapi.from_dict(others), others)]
    failures: list[str] = []
    operations = 0
    started = time.monotonic()
    errors = _ServerErrors()
    server_log = logging.getLogger("mloop.server")
    server_log.addHandler(errors)
    try:
        with requests.Session() as session:
            for schema, document in schemas:
                for result in schema.get_all_operations():
                    operation = result.ok()
                    operations += 1
                    validators = _validators(document, operation)
                    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                        failure = _fuzz(operation, url, headers, session, mode, validators,
                                        errors, examples)
                        if failure:
                            failures.append(failure)
    finally:
        server_log.removeHandler(errors)
    assert operations > 150, f"only {operations} operations in the schemas"
    took = time.monotonic() - started
    assert not failures, (f"{len(failures)} failing operation(s) of {operations} ({examples} "
                          f"examples each, {took:.0f} s):\n\n" + "\n\n".join(failures))


def test_the_callers_mistakes_are_4xx_with_the_error_body(
        served: tuple[str, dict[str, str]]) -> None:
    """One request of each class of 500 the fuzzing found, as the API answers it now."""
    import httpx

    url, headers = served
    cases = [
        ("feedback/save", {"items": [{"request_id": "r", "row": 0, "label": {"a": 1}}]},
         400, "malformed_request"),
        ("runs/log_params", {"run_id": "nope", "values": {"a": "1"}}, 404, "run_not_found"),
        ("runs/search", {"query": {"order": [{"entity": "", "key": "x",
                                              "descending": False}]}}, 422, "invalid_input"),
        ("automation/history", {"limit": -1}, 422, "invalid_input"),
        ("pipeline_runs/recent", {"limit": -3}, 422, "invalid_input"),
    ]
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for path, body, status, code in cases:
            answer = client.post(f"/api/v1/{path}", json=body)
            assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), \
                (path, answer.text)
            assert answer.json()["error"]["message"]
