"""Predictions and model metadata: the V2 routes (``/v2``, ``/v2/models/{name}[/versions/
{v}]``, ``…/ready``, ``…/infer``), ``/predict`` (records, or columns + data) and
``/invocations`` (MLflow's scoring form)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from mloop.core.ids import new_id
from mloop.registry.signature import enforce, refuse_missing_values
from mloop.serving.inference import ServedModel
from mloop.serving.protocol import (
    PayloadError,
    Rows,
    mlflow_frame,
    records_frame,
    v2_frame,
    v2_outputs,
)
from mloop.serving.routes.common import body_of, json_response, openapi_body
from mloop.serving.state import ServingState, state_of

router = APIRouter()


async def run(state: ServingState, served: ServedModel, frame: Any, route: str, *,
              proba: bool = True) -> tuple[Any, Any, str, float]:
    """(predictions, probabilities, request id, latency in s) of ``frame``, checked against
    the signature, micro-batched, logged and counted."""
    metrics = state.metrics
    start = time.perf_counter()
    metrics.in_flight.inc()
    try:
        if len(frame) == 0:
            raise PayloadError("$", "the request has no rows", 422)
        # checked here, alone, so that a request the model cannot take never joins a batch
        if isinstance(frame, Rows):  # a V2 matrix of the signature's float64 columns
            refuse_missing_values(frame.values, served.loaded.signature,
                                  served.traits.nullable)
        else:
            frame = enforce(served.loaded.signature, frame, nullable=served.traits.nullable)
        pred, probabilities = await served.batcher.submit(frame, proba=proba)
    finally:
        metrics.in_flight.dec()
    latency = time.perf_counter() - start
    request_id = new_id()  # time-ordered: feedback finds its log segment by it
    logger = state.logger
    if logger is not None:
        logger.log(served.name, served.version, request_id, frame=frame, pred=pred,
                   proba=probabilities, latency_ms=latency * 1000)
        metrics.dropped.set(logger.dropped)
    latency_of, answered = state.counters(served, route)
    latency_of.observe(latency)
    answered.inc()
    return pred, probabilities, request_id, latency


@router.get("/v2")
async def server_metadata(request: Request) -> Any:
    from mloop._version import __version__

    return json_response({
        "name": "mloop", "version": __version__, "extensions": ["binary_tensor_data"],
        "models": [{"name": s.name, "version": str(s.version), "uri": s.uri,
                    "engine": s.loaded.engine}
                   for versions in state_of(request).models.values() for s in versions]})


@router.get("/v2/models/{name}")
@router.get("/v2/models/{name}/versions/{version}")
async def model_metadata(name: str, request: Request, version: str | None = None) -> Any:
    state = state_of(request)
    if version is None:
        meta = state.model_of(name, None).metadata()
        meta["versions"] = [str(v.version) for v in state.models[name]]
        return json_response(meta)
    return json_response(state.model_of(name, version).metadata())


@router.get("/v2/models/{name}/ready")
@router.get("/v2/models/{name}/versions/{version}/ready")
async def model_ready(name: str, request: Request, version: str | None = None) -> Any:
    state = state_of(request)
    state.model_of(name, version)
    return json_response({"name": name, "ready": state.ready})


@router.post("/v2/models/{name}/infer", openapi_extra=openapi_body("infer"))
@router.post("/v2/models/{name}/versions/{version}/infer", openapi_extra=openapi_body("infer"))
async def infer(name: str, request: Request, version: str | None = None) -> Any:
    state = state_of(request)
    served = state.model_of(name, version)
    frame, wanted, req_id = v2_frame(await body_of(request, state.config.max_body_bytes),
                                     served.loaded.signature)
    declared = served.traits.datatypes
    unknown = [w for w in wanted or () if w not in declared]
    if unknown:  # before predicting: nothing is logged for a request refused
        raise PayloadError("outputs", f"unknown output(s) {', '.join(unknown)}; this "
                                      f"model has {', '.join(declared)}")
    pred, proba, request_id, _ = await run(state, served, frame, "infer",
                                           proba=wanted is None or "predict_proba" in wanted)
    body = {"model_name": served.name, "model_version": str(served.version),
            "outputs": v2_outputs(pred, proba, wanted, declared)}
    if req_id is not None:
        body["id"] = req_id
    return json_response(body, headers={"x-request-id": request_id})


@router.post("/predict", openapi_extra=openapi_body("predict"))
async def predict(request: Request, model: str | None = None) -> Any:
    state = state_of(request)
    served = state.only_model(model)
    frame = records_frame(await body_of(request, state.config.max_body_bytes))
    pred, proba, request_id, _ = await run(state, served, frame, "predict")
    body: dict[str, Any] = {"model": served.name, "version": served.version,
                            "request_id": request_id,
                            "predictions": np.asarray(pred).tolist()}
    if proba is not None:
        body["probabilities"] = np.asarray(proba).tolist()
    return json_response(body, headers={"x-request-id": request_id})


@router.post("/invocations", openapi_extra=openapi_body("invocations"))
async def invocations(request: Request, model: str | None = None) -> Any:
    state = state_of(request)
    served = state.only_model(model)
    frame = mlflow_frame(await body_of(request, state.config.max_body_bytes),
                         served.loaded.signature)
    pred, _, request_id, _ = await run(state, served, frame, "invocations", proba=False)
    return json_response({"predictions": np.asarray(pred).tolist()},
                         headers={"x-request-id": request_id})
