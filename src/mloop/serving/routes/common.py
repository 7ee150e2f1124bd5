"""What the routes share: orjson responses, request bodies read by hand, their schemas."""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from mloop.errors import PayloadTooLargeError
from mloop.serving.protocol import PayloadError, with_binary_inputs

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


def openapi_body(kind: str) -> dict[str, Any]:
    """The ``openapi_extra`` declaring the JSON body of a ``kind`` request."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": _BODIES[kind]}}}}


def json_response(content: Any, status_code: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised by orjson (NumPy arrays included)."""
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY),
                    status_code=status_code, headers=headers, media_type="application/json")


async def body_of(request: Request, max_bytes: int) -> Any:
    """The JSON body of ``request`` (with V2 binary tensors put in place): 413 past
    ``max_bytes``, a 400 :class:`PayloadError` when it does not parse."""
    raw = await request.body()
    if len(raw) > max_bytes:
        raise PayloadTooLargeError("The body is too large (set --max-body-mb).")
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
