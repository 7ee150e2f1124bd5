"""``mloop serve``: registered models behind the Open Inference Protocol (KServe V2).

Routes: ``/v2/health/live``, ``/v2/health/ready``, ``/v2``, ``/v2/models/{name}[/versions/
{v}]`` (metadata), ``…/ready``, ``…/infer``; ``/predict`` (records or columns + data) and
``/invocations`` (MLflow's scoring form) for people and existing clients; ``/metrics``
(Prometheus). Each model has a micro-batcher; every prediction is logged in batches off
the request path; payload mistakes get 400 (malformed) or 422 (against the signature)
with the field named; a full queue gets 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from mloop.core.ids import new_id
from mloop.core.redact import get_logger, redact
from mloop.errors import InvalidInputError, MloopError
from mloop.registry.signature import ColumnError, enforce, refuse_missing_values
from mloop.serving.batcher import MicroBatcher, ModelFailed, Overloaded
from mloop.serving.inference import ServedModel, learn, predict_fn
from mloop.serving.protocol import (
    PayloadError,
    Rows,
    mlflow_frame,
    records_frame,
    v2_frame,
    v2_outputs,
    with_binary_inputs,
)
from mloop.serving.security import Guard, Security

CONFIG_ENV = "MLOOP_SERVE_CONFIG"
log = get_logger("mloop.serving")

# Request bodies are parsed by hand (faster than models, and errors name the field), so
# their shapes are declared here for the OpenAPI document, clients and fuzzers.
_VALUE = {"type": ["boolean", "integer", "number", "string", "null", "array"]}
_TENSOR = {"type": "object", "required": ["name", "shape", "datatype", "data"], "properties": {
    "name": {"type": "string"},
    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
    "datatype": {"type": "string", "enum": ["BOOL", "INT8", "INT16", "INT32", "INT64",
                                            "UINT8", "UINT16", "UINT32", "UINT64", "FP16",
                                            "FP32", "FP64", "BYTES"]},
    "data": {"type": "array", "items": _VALUE},  # flat or nested, as V2 allows
    "parameters": {"type": "object", "properties": {
        "binary_data_size": {"type": "integer", "minimum": 0}}}}}
_ROWS = {"type": "array", "items": {"type": "array", "items": _VALUE}}
_RECORDS = {"type": "array", "items": {"type": "object", "additionalProperties": _VALUE}}
_BODIES = {
    "infer": {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"}, "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": _TENSOR},
        "outputs": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}}}}}},
    "predict": {"type": "object", "properties": {
        "records": _RECORDS,
        "columns": {"type": "array", "items": {"type": "string"}}, "data": _ROWS}},
    "invocations": {"type": "object", "properties": {
        "dataframe_split": {"type": "object", "properties": {
            "columns": {"type": "array", "items": {"type": "string"}}, "data": _ROWS}},
        "dataframe_records": _RECORDS,
        "instances": {"type": "array", "items": _VALUE | {"type": [*_VALUE["type"],
                                                                   "object"]}},
        "inputs": {"type": ["array", "object"]}, "params": {"type": "object"}}},
    "feedback": {"type": "object", "properties": {
        "request_id": {"type": "string"}, "row": {"type": "integer", "minimum": 0},
        "label": {"type": ["string", "number", "boolean", "array"]},
        "items": {"type": "array", "items": {"type": "object", "required": [
            "request_id", "label"]}}}},
}


def _body(kind: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": _BODIES[kind]}}}}


def _json(content: Any, status_code: int = 200,
          headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised by orjson (NumPy arrays included)."""
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY),
                    status_code=status_code, headers=headers, media_type="application/json")


@dataclass
class ServeConfig:
    models: list[str]
    project: str | None = None
    max_batch_size: int = 64
    max_batch_delay_ms: float = 0.0
    max_queue: int = 1024
    max_body_bytes: int = 16 << 20
    engine: str | None = None  # None: the [serving] engine setting (auto)
    log_predictions: bool = True
    monitor_every: float = 60.0  # seconds between drift/performance checks; 0: none
    security: Security = field(default_factory=Security)  # Host, Origin, token, JSON checks
    allow_pickle: bool | None = None  # None: the user's allow_pickle setting (off)


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("mloop_requests", "Requests by model, version, route and "
                                "status", ["model", "version", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("mloop_request_latency_seconds", "Request latency",
                                 ["model", "version", "route"], registry=self.registry,
                                 buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25,
                                          .5, 1, 2.5))
        self.batch = Histogram("mloop_batch_rows", "Rows per model call", ["model"],
                               registry=self.registry,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024))
        self.in_flight = Gauge("mloop_in_flight_requests", "Requests being served",
                               registry=self.registry)
        self.load = Gauge("mloop_model_load_seconds", "Time to load and warm a model",
                          ["model", "version"], registry=self.registry)
        self.dropped = Gauge("mloop_prediction_log_dropped", "Prediction log rows dropped "
                             "because the log queue was full", registry=self.registry)
        # monitoring, refreshed by the background check
        self.drift_share = Gauge("mloop_drift_share", "Share of input columns drifted",
                                 ["model"], registry=self.registry)
        self.dataset_drift = Gauge("mloop_dataset_drift", "1 when the inputs drift",
                                   ["model"], registry=self.registry)
        self.drift_statistic = Gauge("mloop_drift_statistic", "Drift test statistic per "
                                     "input column", ["model", "column", "method"],
                                     registry=self.registry)
        self.drift_detected = Gauge("mloop_drift_detected", "1 when the column drifted",
                                    ["model", "column"], registry=self.registry)
        self.drift_checked = Gauge("mloop_drift_last_check_timestamp_seconds", "When the "
                                   "inputs were last checked", ["model"], registry=self.registry)
        self.live_metric = Gauge("mloop_live_metric", "Metric on the window's labelled "
                                 "predictions", ["model", "metric"], registry=self.registry)
        self.feedback_rows = Gauge("mloop_feedback_rows", "Labelled predictions in the "
                                   "window", ["model"], registry=self.registry)
        self.open_alerts = Gauge("mloop_open_alerts", "Open monitoring alerts",
                                 ["severity"], registry=self.registry)

    def monitored(self, results: list[Any], counts: dict[str, int]) -> None:
        """Gauges from one round of monitoring checks (the first version of a name)."""
        seen: set[str] = set()
        for r in results:
            if r.model in seen:
                continue
            seen.add(r.model)
            if r.drift is not None:
                self.drift_checked.labels(r.model).set(r.drift.created_at / 1000)
                self.drift_share.labels(r.model).set(r.drift.share_drifted)
                self.dataset_drift.labels(r.model).set(float(bool(r.drift.dataset_drift)))
                for name, c in r.drift.columns.items():
                    if c.statistic is not None and c.method is not None:
                        self.drift_statistic.labels(r.model, name, c.method).set(c.statistic)
                    if c.drifted is not None:
                        self.drift_detected.labels(r.model, name).set(float(c.drifted))
            if r.performance is not None:
                self.feedback_rows.labels(r.model).set(r.performance.labelled)
                for metric, value in r.performance.metrics.items():
                    self.live_metric.labels(r.model, metric).set(value)
        for severity, n in counts.items():
            self.open_alerts.labels(severity).set(n)


def create_app(config: ServeConfig) -> Any:
    """The FastAPI application serving ``config.models``."""
    from mloop.project import Project, current_project
    from mloop.registry.models import get_version, load_model
    from mloop.serving.predlog import PredictionLogger

    metrics = _Metrics()
    state: dict[str, Any] = {"ready": False, "models": {}, "logger": None}

    def load_all() -> list[tuple[str, int, str, Any, float, Any]]:
        project = Project.open(config.project) if config.project else current_project()
        state["project"] = project
        out = []
        for uri in config.models:
            start = time.perf_counter()
            version = get_version(project, uri)
            loaded = load_model(project, version.uri,
                                engine=config.engine or project.settings.serve_engine,
                                allow_pickle=config.allow_pickle)
            example = loaded.manifest.get("input_example")
            frame = None
            if example and version.run_id:  # warm: the first predict pays lazy imports
                from mloop.tracking import artifacts

                body = json.loads(artifacts.read_artifact(
                    project, version.run_id, f"{version.artifact_path}/{example}"))
                import pandas as pd

                frame = (pd.DataFrame(body["data"], columns=body.get("columns"))
                         if "columns" in body else np.asarray(body["data"]))
            out.append((version.name, version.version, version.uri, loaded,
                        time.perf_counter() - start, learn(loaded, frame)))
        return out

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        loaded = await asyncio.get_running_loop().run_in_executor(None, load_all)
        for name, version, uri, model, seconds, traits in loaded:
            batcher = MicroBatcher(predict_fn(model, traits.has_proba, traits.takes_matrix),
                                   max_batch_size=config.max_batch_size,
                                   max_delay=config.max_batch_delay_ms / 1000,
                                   max_queue=config.max_queue,
                                   on_batch=metrics.batch.labels(name).observe)
            batcher.start()
            served = ServedModel(name, version, uri, model, batcher, seconds, traits)
            # the first version listed for a name answers requests without a version
            state["models"].setdefault(name, []).append(served)
            metrics.load.labels(name, str(version)).set(seconds)
        if config.log_predictions:
            state["logger"] = PredictionLogger(state["project"].root / ".mloop" / "predictions")
        monitor = None
        if config.monitor_every > 0 and config.log_predictions:
            monitor = asyncio.create_task(watch())
        state["ready"] = True
        yield
        state["ready"] = False
        if monitor is not None:
            monitor.cancel()
        for versions in state["models"].values():
            for served in versions:
                await served.batcher.stop()
        if state["logger"] is not None:
            state["logger"].close()

    def check_once() -> None:
        from mloop.monitoring.alerting import open_counts
        from mloop.monitoring.runner import check

        project = state["project"]
        metrics.monitored(check(project, models=list(state["models"])), open_counts(project))

    async def watch() -> None:
        """Drift, live metrics and alert rules for the served models, off the event loop;
        a failing round is logged and the next one tries again."""
        from mloop.core.redact import get_logger

        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(config.monitor_every)
            try:
                await loop.run_in_executor(None, check_once)
            except Exception:  # never let monitoring take serving down
                get_logger("mloop.monitoring").exception("monitoring round failed")

    app = FastAPI(title="mloop serve", lifespan=lifespan)

    # the one middleware: nothing reaches a route (or reads a body) unchecked, and a
    # declared body over --max-body-mb gets 413 there
    app.add_middleware(Guard, security=config.security, max_body=config.max_body_bytes)

    def model_of(name: str, version: str | None) -> ServedModel:
        versions: list[ServedModel] = state["models"].get(name, [])
        if not versions:
            raise _NotServed(f"No model {name!r} is served here; see GET /v2.")
        if version is None:
            return versions[0]
        for served in versions:
            if str(served.version) == version:
                return served
        raise _NotServed(f"Model {name!r} is served at version(s) "
                         f"{', '.join(str(v.version) for v in versions)}, not {version}.")

    async def body_of(request: Request) -> Any:
        raw = await request.body()
        if len(raw) > config.max_body_bytes:
            raise _TooLarge()
        header = request.headers.get("inference-header-content-length")
        tail = b""
        if header is not None:  # the V2 binary tensor extension: JSON, then raw tensors
            # ASCII digits only: str.isdigit() also takes "²", which int() refuses
            if not re.fullmatch(r"[0-9]{1,12}", header) or int(header) > len(raw):
                raise PayloadError("Inference-Header-Content-Length",
                                   "must be the byte length of the JSON part")
            raw, tail = raw[:int(header)], raw[int(header):]
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise PayloadError("$", f"malformed JSON: {exc}") from None
        return with_binary_inputs(body, tail) if header is not None else body

    async def run(served: ServedModel, frame: Any, route: str, *, proba: bool = True
                  ) -> tuple[Any, Any, str, float]:
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
                frame = enforce(served.loaded.signature, frame,
                                nullable=served.traits.nullable)
            pred, probabilities = await served.batcher.submit(frame, proba=proba)
        finally:
            metrics.in_flight.dec()
        latency = time.perf_counter() - start
        request_id = new_id()  # time-ordered: feedback finds its log segment by it
        logger = state["logger"]
        if logger is not None:
            logger.log(served.name, served.version, request_id, frame=frame, pred=pred,
                       proba=probabilities, latency_ms=latency * 1000)
            metrics.dropped.set(logger.dropped)
        latency_of, answered = counters(served, route)
        latency_of.observe(latency)
        answered.inc()
        return pred, probabilities, request_id, latency

    children: dict[tuple[str, int, str], tuple[Any, Any]] = {}

    def counters(served: ServedModel, route: str) -> tuple[Any, Any]:
        """The latency histogram and the 200 counter of a model's route (looked up once:
        a labelled child costs a lock and a dict lookup on every request otherwise)."""
        key = (served.name, served.version, route)
        found = children.get(key)
        if found is None:
            version = str(served.version)
            found = children[key] = (metrics.latency.labels(served.name, version, route),
                                     metrics.requests.labels(served.name, version, route,
                                                             "200"))
        return found

    def failed(request: Request, status: int) -> int:
        """Count a failed inference request (other routes are not counted: their paths
        are the caller's to choose, and labels must stay few)."""
        route = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        if route in ("infer", "predict", "invocations"):
            served = state["models"]
            name = request.path_params.get("name") or request.query_params.get("model")
            if name is None and len(served) == 1:
                name = next(iter(served))  # the one model /predict answers for
            versions = served.get(name, []) if name is not None else []
            wanted = request.path_params.get("version")
            version = next((str(v.version) for v in versions
                            if wanted is None or str(v.version) == wanted), "")
            # names and versions not served here are one label: callers choose them
            metrics.requests.labels(name if versions else "unknown",
                                    version if versions else "", route, str(status)).inc()
        return status

    @app.exception_handler(PayloadError)
    async def payload_error(request: Request, exc: PayloadError) -> Any:
        return _json({"error": exc.message, "field": exc.field},
                     status_code=failed(request, exc.status))

    @app.exception_handler(MloopError)
    async def mloop_error(request: Request, exc: MloopError) -> Any:
        status = 422 if isinstance(exc, InvalidInputError) else exc.http_status
        body = {"error": exc.message}
        if isinstance(exc, ColumnError):
            body["field"] = exc.column
        return _json(body, status_code=failed(request, status))

    @app.exception_handler(ModelFailed)
    async def model_failed(request: Request, exc: ModelFailed) -> Any:
        """The model raised on this request alone: a 500 for it, with the model's reason."""
        log.error("%s: the model failed on a request", request.url.path, exc_info=exc.error)
        return _json({"error": redact(f"The model failed on this request: {exc}")[:2000]},
                     status_code=failed(request, 500))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Any:
        """A bug, not the caller's doing: a JSON 500 (the traceback goes to the log)."""
        return _json({"error": "Internal error (logged by the server)."},
                     status_code=failed(request, 500))

    @app.exception_handler(_NotServed)
    async def not_served(request: Request, exc: _NotServed) -> Any:
        return _json({"error": str(exc)}, status_code=failed(request, 404))

    @app.exception_handler(_TooLarge)
    async def too_large(request: Request, exc: _TooLarge) -> Any:
        return _json({"error": "The body is too large (set --max-body-mb)."},
                     status_code=failed(request, 413))

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, exc: Overloaded) -> Any:
        return _json({"error": str(exc)}, status_code=failed(request, 503),
                     headers={"Retry-After": "1"})

    @app.get("/v2/health/live")
    async def live() -> Any:
        return _json({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> Any:
        if not state["ready"]:
            return _json({"ready": False}, status_code=503)
        return _json({"ready": True})

    @app.get("/v2")
    async def server_metadata() -> Any:
        from mloop._version import __version__

        return _json({
            "name": "mloop", "version": __version__, "extensions": ["binary_tensor_data"],
            "models": [{"name": s.name, "version": str(s.version), "uri": s.uri,
                        "engine": s.loaded.engine}
                       for versions in state["models"].values() for s in versions]})

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> Any:
        if version is None:
            meta = model_of(name, None).metadata()
            meta["versions"] = [str(v.version) for v in state["models"][name]]
            return _json(meta)
        return _json(model_of(name, version).metadata())

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Any:
        model_of(name, version)
        return _json({"name": name, "ready": state["ready"]})

    @app.post("/v2/models/{name}/infer", openapi_extra=_body("infer"))
    @app.post("/v2/models/{name}/versions/{version}/infer", openapi_extra=_body("infer"))
    async def infer(name: str, request: Request, version: str | None = None) -> Any:
        served = model_of(name, version)
        frame, wanted, req_id = v2_frame(await body_of(request), served.loaded.signature)
        declared = served.traits.datatypes
        unknown = [w for w in wanted or () if w not in declared]
        if unknown:  # before predicting: nothing is logged for a request refused
            raise PayloadError("outputs", f"unknown output(s) {', '.join(unknown)}; this "
                                          f"model has {', '.join(declared)}")
        pred, proba, request_id, _ = await run(served, frame, "infer",
                                               proba=wanted is None or "predict_proba" in wanted)
        outputs = v2_outputs(pred, proba, wanted, declared)
        body = {"model_name": served.name, "model_version": str(served.version),
                "outputs": outputs}
        if req_id is not None:
            body["id"] = req_id
        return _json(body, headers={"x-request-id": request_id})

    def only_model(name: str | None) -> ServedModel:
        if name is not None:
            return model_of(name, None)
        if len(state["models"]) != 1:
            raise PayloadError("model", "several models are served; add ?model=NAME")
        served: ServedModel = next(iter(state["models"].values()))[0]
        return served

    @app.post("/predict", openapi_extra=_body("predict"))
    async def predict(request: Request, model: str | None = None) -> Any:
        served = only_model(model)
        frame = records_frame(await body_of(request))
        pred, proba, request_id, _ = await run(served, frame, "predict")
        body: dict[str, Any] = {"model": served.name, "version": served.version,
                                "request_id": request_id,
                                "predictions": np.asarray(pred).tolist()}
        if proba is not None:
            body["probabilities"] = np.asarray(proba).tolist()
        return _json(body, headers={"x-request-id": request_id})

    @app.post("/invocations", openapi_extra=_body("invocations"))
    async def invocations(request: Request, model: str | None = None) -> Any:
        served = only_model(model)
        frame = mlflow_frame(await body_of(request), served.loaded.signature)
        pred, _, request_id, _ = await run(served, frame, "invocations", proba=False)
        return _json({"predictions": np.asarray(pred).tolist()},
                              headers={"x-request-id": request_id})

    @app.get("/api/v1/precomputed/{table}/{key}")
    async def precomputed(table: str, key: str) -> Any:
        from mloop.serving.precompute import lookup

        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, lookup, state["project"], table, key)
        return _json(found)

    @app.post("/api/v1/feedback", openapi_extra=_body("feedback"))
    async def feedback(request: Request) -> Any:
        return await _feedback(state, await body_of(request))

    @app.get("/metrics")
    async def prometheus() -> Any:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return PlainTextResponse(generate_latest(metrics.registry),
                                 media_type=CONTENT_TYPE_LATEST)

    return app


async def _feedback(state: dict[str, Any], body: Any) -> Any:
    """Store the labels of one feedback request: ``{"stored": N, "unmatched": M}``, or 413
    naming the ``[serving]`` limit it passed."""
    from functools import partial

    from mloop.monitoring import feedback as fb

    settings = state["project"].settings
    try:
        entries = fb.request_entries(body, max_items=settings.feedback_max_items,
                                     max_label_bytes=settings.feedback_max_label_bytes)
    except fb.LimitError as exc:
        return _json({"error": exc.message, "limit": exc.limit, "value": exc.value},
                     status_code=413)
    logger = state["logger"]
    save = partial(fb.save, state["project"], entries,
                   unwritten=logger.unwritten if logger is not None else None)
    result = await asyncio.get_running_loop().run_in_executor(None, save)
    return _json(result.to_dict())


class _NotServed(LookupError):
    pass


class _TooLarge(ValueError):
    pass


def app_factory() -> Any:
    """For ``uvicorn --factory`` with several workers: the config comes from the env."""
    config = json.loads(os.environ[CONFIG_ENV])
    config["security"] = Security(**config.get("security", {}))
    return create_app(ServeConfig(**config))


def serve(config: ServeConfig, *, host: str = "127.0.0.1", port: int = 8080,
          workers: int = 1) -> None:
    """Run the server until SIGINT/SIGTERM (in-flight requests are drained)."""
    from dataclasses import replace

    import uvicorn

    # the Host check accepts the address bound here, whatever the config said
    config = replace(config, security=replace(config.security, host=host))

    if workers > 1:
        os.environ[CONFIG_ENV] = json.dumps(asdict(config))
        uvicorn.run("mloop.serving.server:app_factory", factory=True, host=host, port=port,
                    workers=workers, log_level="warning", timeout_graceful_shutdown=30)
        return
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning",
                timeout_graceful_shutdown=30)
