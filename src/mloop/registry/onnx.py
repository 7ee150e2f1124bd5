"""The ONNX fast path: convert scikit-learn models with skl2onnx, predict with onnxruntime.

A single-row ``predict`` of a scikit-learn model spends most of its time in Python
validation; onnxruntime runs the same graph in microseconds. A conversion is kept only
when it reproduces scikit-learn on the input example: labels equal, probabilities within
``TOLERANCE``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mloop.errors import InvalidInputError

TOLERANCE = 1e-5


class OnnxModel:
    """An onnxruntime session with ``predict`` / ``predict_proba`` on one 2-D input."""

    def __init__(self, session: Any) -> None:
        self.session = session
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        self.dtype = np.float64 if "double" in inp.type else np.float32
        self.outputs = [o.name for o in session.get_outputs()]

    @staticmethod
    def from_bytes(data: bytes) -> OnnxModel:
        try:
            import onnxruntime as ort
        except ImportError:
            raise InvalidInputError("The ONNX engine needs onnxruntime: pip install "
                                    "'mloop[onnx]'.") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # single rows: threads cost more than they give
        opts.inter_op_num_threads = 1
        return OnnxModel(ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"]))

    def _run(self, data: Any) -> list[Any]:
        values = data.to_numpy() if hasattr(data, "to_numpy") else np.asarray(data)
        values = np.ascontiguousarray(values, dtype=self.dtype)
        if values.ndim == 1:
            values = values.reshape(1, -1)
        return self.session.run(None, {self.input_name: values})

    def predict(self, data: Any) -> Any:
        out = self._run(data)[0]
        return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out

    def predict_both(self, data: Any) -> tuple[Any, Any]:
        """(labels, probabilities) from one run of the graph (it computes both anyway)."""
        out = self._run(data)
        if len(out) < 2:
            raise InvalidInputError("This model gives no probabilities (it is not a "
                                    "classifier).")
        label = out[0]
        return (label.ravel() if label.ndim == 2 and label.shape[1] == 1 else label), out[1]

    def predict_proba(self, data: Any) -> Any:
        out = self._run(data)
        if len(out) < 2:
            raise InvalidInputError("This model gives no probabilities (it is not a "
                                    "classifier).")
        return out[1]


def convert(model: Any, example: Any) -> tuple[bytes | None, str]:
    """(ONNX bytes, note) for a scikit-learn model that converts faithfully, else
    (None, why not)."""
    try:
        from skl2onnx import to_onnx
    except ImportError:
        return None, "skl2onnx is not installed (pip install 'mloop[onnx]')"
    values = example.to_numpy() if hasattr(example, "to_numpy") else np.asarray(example)
    if values.ndim != 2 or values.dtype.kind not in "biuf":
        return None, "ONNX export needs an all-numeric 2-D input example"
    x64 = values.astype(np.float64)
    options = {"zipmap": False} if hasattr(model, "predict_proba") else None
    for dtype in (np.float64, np.float32):
        try:
            onx = to_onnx(model, x64[:1].astype(dtype), target_opset=None,
                          options={id(model): options} if options else None)
            data = onx.SerializeToString()
            candidate = OnnxModel.from_bytes(data)
        except Exception as exc:  # skl2onnx raises many types for unsupported models
            last = f"skl2onnx cannot convert it: {exc}"
            continue
        why = _disagreement(model, candidate, example, x64)
        if why is None:
            return data, f"converted ({np.dtype(dtype).name} inputs)"
        last = why
    return None, last


def _disagreement(model: Any, onnx_model: OnnxModel, example: Any, x: Any) -> str | None:
    theirs = np.asarray(model.predict(example))  # as fitted (a frame keeps its names)
    ours = np.asarray(onnx_model.predict(x))
    if theirs.dtype.kind in "iubOU":
        if not np.array_equal(theirs.astype(str), ours.astype(str)):
            return "ONNX labels differ from scikit-learn's on the input example"
    elif not np.allclose(theirs, ours, rtol=TOLERANCE, atol=TOLERANCE):
        return "ONNX predictions differ from scikit-learn's beyond 1e-5 on the input example"
    if hasattr(model, "predict_proba") and not np.allclose(
            model.predict_proba(example), onnx_model.predict_proba(x), rtol=0, atol=TOLERANCE):
        return "ONNX probabilities differ from scikit-learn's beyond 1e-5"
    return None
