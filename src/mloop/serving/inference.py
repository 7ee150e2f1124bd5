"""What a served model takes and gives, learnt once when the server loads it.

The server predicts the model's input example at load (the warm-up: the first call pays
the lazy imports) and keeps what that shows:

- the outputs' V2 datatypes and shapes, so that ``GET /v2/models/{name}`` declares what
  ``/infer`` returns (``INT64`` labels of an integer classifier, ``BYTES`` string labels,
  ``FP64`` regression, ``FP32`` from an ONNX twin) and every response is cast to it;
- whether it gives probabilities (``predict_proba`` answered on the example);
- which columns take a missing value: the example is predicted with the column missing
  (NaN, None or NaT); where the model fails or answers NaN, a request with a gap in that
  column gets 422 before it joins a batch, rather than failing the batch. int64 and bool
  columns never take one (they cannot hold it).

A model without an input example has no signature: its rows are not checked, its
``predict`` datatype comes from ``classes_`` (FP64 without), and a row the model fails
on gets 500 for that request alone (see ``batcher``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.core.redact import get_logger
from mloop.errors import InvalidInputError
from mloop.registry.signature import MISSABLE, Signature, enforce, refuse_missing_values
from mloop.serving.batcher import MicroBatcher
from mloop.serving.protocol import PayloadError, Rows, v2_datatype

if TYPE_CHECKING:
    from mloop.serving.state import ServingState

log = get_logger("mloop.serving")

PROBE_COLUMNS = 512  # wider models: one probe with every column missing, not one per column

Predict = Callable[[Any, bool], tuple[Any, Any]]


@dataclass(frozen=True)
class Output:
    name: str
    datatype: str  # V2
    shape: tuple[int, ...]  # after the batch axis


@dataclass(frozen=True)
class Traits:
    """What the warm-up learnt; ``nullable`` is None when there was nothing to try."""

    outputs: tuple[Output, ...]
    nullable: frozenset[str] | None
    takes_matrix: bool = False  # answers a float64 matrix as it answers the frame

    @property
    def has_proba(self) -> bool:
        return any(o.name == "predict_proba" for o in self.outputs)

    @property
    def datatypes(self) -> dict[str, str]:
        return {o.name: o.datatype for o in self.outputs}


def predict_fn(loaded: Any, with_proba: bool, takes_matrix: bool = False) -> Predict:
    """(rows, want probabilities) -> (predictions, probabilities or None).

    :class:`~mloop.serving.protocol.Rows` go to the model as their matrix when the
    warm-up showed it answers one as it answers the frame (``takes_matrix``), else as a
    frame. The ONNX twin gives labels and probabilities from one run."""
    inner = loaded.model
    proba = getattr(inner, "predict_proba", None) if with_proba else None
    both = getattr(inner, "predict_both", None) if with_proba else None

    def predict(rows: Any, want: bool) -> tuple[Any, Any]:
        if isinstance(rows, Rows):
            if not takes_matrix:
                rows = rows.to_frame()
            else:
                with _unnamed():
                    return predict(rows.values, want)
        if both is not None and want:
            pred, probabilities = both(rows)
            return np.asarray(pred), np.asarray(probabilities)
        pred = np.asarray(inner.predict(rows))
        return pred, (np.asarray(proba(rows)) if proba is not None and want else None)

    return predict


@contextmanager
def _unnamed() -> Iterator[None]:
    """Silence scikit-learn's note that a matrix has no column names: the warm-up showed
    the model answers the matrix (columns in the signature's order, which are the names it
    was fitted with) exactly as it answers the frame."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        yield


def _answers_matrix(loaded: Any, rows: Any, pred: np.ndarray, proba: np.ndarray | None
                    ) -> bool:
    """Whether ``loaded`` answers the float64 matrix of the frame ``rows`` as it answered
    the frame (``pred`` equal, ``proba`` within 1e-9: a frame's values reach the model in
    another memory order, so sums may differ in the last bit): only for all-float64
    tables whose model was fitted with these column names in this order (or none)."""
    signature = loaded.signature
    if signature.kind != "table" or any(d != "float64" for _, d in signature.columns):
        return False
    fitted = getattr(loaded.model, "feature_names_in_", None)
    if fitted is not None and list(map(str, fitted)) != signature.names:
        return False
    values = np.ascontiguousarray(rows.to_numpy(dtype=np.float64))
    try:
        with _unnamed():
            same = np.array_equal(np.asarray(loaded.model.predict(values)), pred)
            if same and proba is not None:  # the same sums in another memory order
                same = np.allclose(np.asarray(loaded.model.predict_proba(values)), proba,
                                   rtol=1e-9, atol=1e-12)
    except Exception:  # e.g. a ColumnTransformer that selects columns by name
        return False
    return bool(same)


def _output(name: str, values: np.ndarray) -> Output:
    return Output(name, v2_datatype(values), tuple(values.shape[1:]))


def learn(loaded: Any, example: Any) -> Traits:
    """Outputs and missing-value columns of ``loaded``, from its input example (or None)."""
    signature = loaded.signature
    if example is None or signature is None:
        return _without_example(loaded)
    try:
        rows = enforce(signature, example)
    except InvalidInputError as exc:  # an old example the rules now refuse: serve anyway
        log.warning("%s: its input example does not fit its signature (%s); rows with "
                    "missing values go to the model unchecked", loaded.source, exc)
        return _without_example(loaded)
    pred = np.asarray(loaded.model.predict(rows))  # a failure here stops the server: good
    outputs = [_output("predict", pred)]
    proba = None
    if hasattr(loaded.model, "predict_proba"):
        try:
            proba = np.asarray(loaded.model.predict_proba(rows))
            outputs.append(_output("predict_proba", proba))
        except Exception as exc:  # e.g. the ONNX twin of a regressor
            log.info("%s gives no probabilities: %s", loaded.source, exc)
    has_proba = len(outputs) == 2
    return Traits(tuple(outputs), _probe_missing(predict_fn(loaded, has_proba),
                                                 signature, rows),
                  _answers_matrix(loaded, rows, pred, proba))


def _without_example(loaded: Any) -> Traits:
    classes = getattr(loaded.model, "classes_", None)
    datatype = v2_datatype(np.asarray(classes)) if classes is not None else "FP64"
    outputs = [Output("predict", datatype, ())]
    if classes is not None and hasattr(loaded.model, "predict_proba"):
        outputs.append(Output("predict_proba", "FP64", (len(classes),)))
    return Traits(tuple(outputs), None)


def _takes(predict: Predict, rows: Any) -> bool:
    """Whether the model predicts ``rows`` without failing and without NaN answers."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred, proba = predict(rows, True)
    except Exception:
        return False
    return all(a.dtype.kind not in "fc" or bool(np.isfinite(a).all())
               for a in (pred, proba) if a is not None)


def _probe_missing(predict: Predict, signature: Signature, rows: Any) -> frozenset[str]:
    """The columns (``input`` for a tensor) where the model takes a missing value."""
    import pandas as pd

    if signature.kind == "tensor":
        if signature.dtype not in MISSABLE:
            return frozenset()
        holed = np.full(np.shape(rows), np.nan if signature.dtype == "float64" else None)
        return frozenset({"input"}) if _takes(predict, holed) else frozenset()
    gap = {"float64": np.nan, "str": None, "datetime64[ns]": pd.NaT}
    candidates = {n: gap[d] for n, d in signature.columns if d in MISSABLE}
    if not candidates:
        return frozenset()
    if _takes(predict, rows.assign(**candidates)):
        return frozenset(candidates)
    if len(candidates) > PROBE_COLUMNS:
        return frozenset()
    return frozenset(n for n, value in candidates.items()
                     if _takes(predict, rows.assign(**{n: value})))


@dataclass
class ServedModel:
    name: str
    version: int
    uri: str
    loaded: Any
    batcher: MicroBatcher
    load_seconds: float
    traits: Traits

    def check(self, frame: Any) -> Any:
        """``frame`` as the model takes it, checked against the signature alone, so that
        a request the model cannot take never joins a batch (422 naming the field)."""
        if len(frame) == 0:
            raise PayloadError("$", "the request has no rows", 422)
        if isinstance(frame, Rows):  # a V2 matrix of the signature's float64 columns
            refuse_missing_values(frame.values, self.loaded.signature, self.traits.nullable)
            return frame
        return enforce(self.loaded.signature, frame, nullable=self.traits.nullable)

    async def predict(self, frame: Any, *, proba: bool = True) -> tuple[Any, Any, Any]:
        """(rows as checked, predictions, probabilities or None), micro-batched."""
        frame = self.check(frame)
        pred, probabilities = await self.batcher.submit(frame, proba=proba)
        return frame, pred, probabilities

    def metadata(self) -> dict[str, Any]:
        """The V2 model metadata: inputs from the signature, outputs from the warm-up."""
        sig = self.loaded.signature
        if sig is not None and sig.kind == "table":
            inputs = [{"name": n, "datatype": _v2_of(d), "shape": [-1]} for n, d in sig.columns]
        elif sig is not None:
            inputs = [{"name": "input", "datatype": _v2_of(sig.dtype or "float64"),
                       "shape": [-1, *sig.shape]}]
        else:
            inputs = []
        outputs = [{"name": o.name, "datatype": o.datatype, "shape": [-1, *o.shape]}
                   for o in self.traits.outputs]
        return {"name": self.name, "versions": [str(self.version)],
                "platform": f"mloop_{self.loaded.flavor}", "inputs": inputs,
                "outputs": outputs}


def _v2_of(dtype: str) -> str:
    return {"int64": "INT64", "float64": "FP64", "bool": "BOOL"}.get(dtype, "BYTES")


async def run(state: ServingState, served: ServedModel, frame: Any, route: str, *,
              proba: bool = True, request_id: str | None = None
              ) -> tuple[Any, Any, str, float]:
    """(predictions, probabilities, request id, latency in s) of ``frame``, checked against
    the signature, micro-batched, logged and counted. ``request_id``: the one to log under
    (a new time-ordered id without: feedback finds its log segment by it)."""
    from mloop.core.ids import new_id

    metrics = state.metrics
    start = time.perf_counter()
    metrics.in_flight.inc()
    try:
        frame, pred, probabilities = await served.predict(frame, proba=proba)
    finally:
        metrics.in_flight.dec()
    latency = time.perf_counter() - start
    if request_id is None:
        request_id = new_id()
    logger = state.logger
    if logger is not None:
        logger.log(served.name, served.version, request_id, frame=frame, pred=pred,
                   proba=probabilities, latency_ms=latency * 1000)
        metrics.dropped.set(logger.dropped)
    latency_of, answered = state.counters(served, route)
    latency_of.observe(latency)
    answered.inc()
    return pred, probabilities, request_id, latency
