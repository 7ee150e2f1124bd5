"""Predictions and model metadata: the V2 routes (``/v2``, ``/v2/models/{name}[/versions/
{v}]``, ``…/ready``, ``…/infer``), ``/predict`` (records, or columns + data) and
``/invocations`` (MLflow's scoring form)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from mloop.errors import NotFoundError
from mloop.serving.endpoint import Endpoint
from mloop.serving.inference import ServedModel, run
from mloop.serving.protocol import (
    PayloadError,
    mlflow_frame,
    records_frame,
    v2_frame,
    v2_outputs,
)
from mloop.serving.routes.common import body_of, json_response, openapi_body
from mloop.serving.state import ServingState, state_of

router = APIRouter()


@router.get("/v2")
async def server_metadata(request: Request) -> Any:
    from mloop._version import __version__

    return json_response({
        "name": "mloop", "version": __version__, "extensions": ["binary_tensor_data"],
        "models": [{"name": s.name, "version": str(s.version), "uri": s.uri,
                    "engine": s.loaded.engine}
                   for versions in state_of(request).models.values() for s in versions],
        "deployments": sorted(state_of(request).endpoints)})


def _endpoint(state: ServingState, name: str | None, version: str | None
              ) -> Endpoint | None:
    endpoint = state.endpoint_of(name)
    if endpoint is not None and version is not None:
        raise NotFoundError(f"{name!r} is a deployment: it has revisions, not versions; "
                            f"ask /v2/models/{name} (or a model's own name and version).")
    return endpoint


@router.get("/v2/models/{name}")
@router.get("/v2/models/{name}/versions/{version}")
async def model_metadata(name: str, request: Request, version: str | None = None) -> Any:
    state = state_of(request)
    endpoint = _endpoint(state, name, version)
    if endpoint is not None:  # the model serving it now, under the deployment's name
        return json_response(endpoint.model().metadata() | {"name": name})
    if version is None:
        meta = state.model_of(name, None).metadata()
        meta["versions"] = [str(v.version) for v in state.models[name]]
        return json_response(meta)
    return json_response(state.model_of(name, version).metadata())


@router.get("/v2/models/{name}/ready")
@router.get("/v2/models/{name}/versions/{version}/ready")
async def model_ready(name: str, request: Request, version: str | None = None) -> Any:
    state = state_of(request)
    if _endpoint(state, name, version) is None:
        state.model_of(name, version)
    return json_response({"name": name, "ready": state.ready})


@router.post("/v2/models/{name}/infer", openapi_extra=openapi_body("infer"))
@router.post("/v2/models/{name}/versions/{version}/infer", openapi_extra=openapi_body("infer"))
async def infer(name: str, request: Request, version: str | None = None) -> Any:
    state = state_of(request)
    endpoint = _endpoint(state, name, version)
    if endpoint is not None:
        return await _infer_endpoint(state, endpoint, request)
    served = state.model_of(name, version)
    frame, wanted, req_id = v2_frame(await body_of(request, state.config.max_body_bytes),
                                     served.loaded.signature)
    declared = _declared(served, wanted)
    pred, proba, request_id, _ = await run(state, served, frame, "infer",
                                           proba=wanted is None or "predict_proba" in wanted)
    body = {"model_name": served.name, "model_version": str(served.version),
            "outputs": v2_outputs(pred, proba, wanted, declared)}
    if req_id is not None:
        body["id"] = req_id
    return json_response(body, headers={"x-request-id": request_id})


def _declared(served: ServedModel, wanted: list[str] | None) -> dict[str, str]:
    declared = served.traits.datatypes
    unknown = [w for w in wanted or () if w not in declared]
    if unknown:  # before predicting: nothing is logged for a request refused
        raise PayloadError("outputs", f"unknown output(s) {', '.join(unknown)}; this "
                                      f"model has {', '.join(declared)}")
    return declared


async def _infer_endpoint(state: ServingState, endpoint: Endpoint, request: Request) -> Any:
    body = await body_of(request, state.config.max_body_bytes)
    pick = endpoint.choose(body, request.headers)
    frame, wanted, req_id = v2_frame(body, pick.served.loaded.signature)
    declared = _declared(pick.served, wanted)
    answer = await endpoint.predict(state, pick, frame, "infer",
                                    proba=wanted is None or "predict_proba" in wanted)
    out = {"model_name": answer.served.name, "model_version": str(answer.served.version),
           "outputs": v2_outputs(answer.pred, answer.proba, wanted, declared)}
    if req_id is not None:
        out["id"] = req_id
    return json_response(out, headers={"x-request-id": answer.request_id, **answer.headers})


async def _answer(request: Request, model: str | None, route: str,
                  read: Callable[[Any, ServedModel], Any], *, proba: bool
                  ) -> tuple[ServedModel, Any, Any, str, dict[str, str]]:
    """(model that answered, predictions, probabilities, request id, headers) of a
    ``/predict`` or ``/invocations`` request: routed by a deployment when ``model`` names
    one, else by the served model; ``read`` turns the body into the model's rows."""
    state = state_of(request)
    endpoint = state.endpoint_of(model)
    body = await body_of(request, state.config.max_body_bytes)
    if endpoint is not None:
        pick = endpoint.choose(body, request.headers)
        answer = await endpoint.predict(state, pick, read(body, pick.served), route,
                                        proba=proba)
        return (answer.served, answer.pred, answer.proba, answer.request_id,
                {"x-request-id": answer.request_id, **answer.headers})
    served = state.only_model(model)
    pred, probabilities, request_id, _ = await run(state, served, read(body, served), route,
                                                   proba=proba)
    return served, pred, probabilities, request_id, {"x-request-id": request_id}


@router.post("/predict", openapi_extra=openapi_body("predict"))
async def predict(request: Request, model: str | None = None) -> Any:
    served, pred, proba, request_id, headers = await _answer(
        request, model, "predict", lambda body, _: records_frame(body), proba=True)
    out: dict[str, Any] = {"model": served.name, "version": served.version,
                           "request_id": request_id,
                           "predictions": np.asarray(pred).tolist()}
    if proba is not None:
        out["probabilities"] = np.asarray(proba).tolist()
    return json_response(out, headers=headers)


@router.post("/invocations", openapi_extra=openapi_body("invocations"))
async def invocations(request: Request, model: str | None = None) -> Any:
    _, pred, _, _, headers = await _answer(
        request, model, "invocations",
        lambda body, served: mlflow_frame(body, served.loaded.signature), proba=False)
    return json_response({"predictions": np.asarray(pred).tolist()}, headers=headers)
