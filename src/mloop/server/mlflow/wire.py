"""MLflow's wire conventions: proto3 JSON replies, its error codes, and reading requests.

The mlflow client decides on the ``error_code`` of an error body (``set_experiment``
creates the experiment after a 404 ``RESOURCE_DOES_NOT_EXIST``; registration goes on
after ``RESOURCE_ALREADY_EXISTS``), so every mloop error a route raises is answered in
MLflow's form here, not in mloop's own ``{"error": {...}}`` (see :func:`mlflow_errors`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from mloop.core.redact import get_logger
from mloop.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    MloopError,
    NotFoundError,
    ParamConflictError,
    PayloadTooLargeError,
    TokenError,
)

log = get_logger("mloop.server.mlflow")

NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
INVALID = "INVALID_PARAMETER_VALUE"
EXISTS = "RESOURCE_ALREADY_EXISTS"
BAD_REQUEST = "BAD_REQUEST"

MAX_BODY = 64 << 20  # a JSON request body (artifacts are streamed, not read this way)


class MlflowError(Exception):
    """An answer in MLflow's error form: an HTTP status, an ``error_code``, a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def invalid(message: str) -> MlflowError:
    return MlflowError(400, INVALID, message)


def not_found(message: str) -> MlflowError:
    return MlflowError(404, NOT_FOUND, message)


def exists(message: str) -> MlflowError:
    return MlflowError(400, EXISTS, message)


def translate(exc: MloopError) -> tuple[int, str]:
    """The HTTP status and MLflow ``error_code`` that stand for one of mloop's errors."""
    if isinstance(exc, TokenError):
        return 401, "UNAUTHENTICATED"
    if isinstance(exc, ForbiddenError):
        return 403, "PERMISSION_DENIED"
    if isinstance(exc, PayloadTooLargeError):
        return 413, INVALID
    if isinstance(exc, NotFoundError):
        return 404, NOT_FOUND
    if isinstance(exc, ParamConflictError):  # MLflow: params are immutable, a bad value
        return 400, INVALID
    if isinstance(exc, ConflictError):
        return 400, EXISTS if "exist" in exc.message else INVALID
    if isinstance(exc, InvalidInputError):
        return 400, INVALID
    return exc.http_status, "INTERNAL_ERROR"


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


# -- reading requests -----------------------------------------------------------------

async def read_json(request: Request) -> dict[str, Any]:
    """The JSON object of a POST/PATCH body (``{}`` for an empty body)."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise MlflowError(413, INVALID, f"Request body over {MAX_BODY >> 20} MiB.")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MlflowError(400, BAD_REQUEST, f"Request body is not JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise MlflowError(400, BAD_REQUEST, "Request body must be a JSON object.")
    return data


def text(data: Mapping[str, Any], key: str, *, required: bool = True,
         default: str | None = None) -> str | None:
    """A string field (numbers are accepted as their text, as proto3 JSON allows)."""
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise invalid(f"Missing value for required parameter '{key}'.")
        return default
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise invalid(f"Invalid value {value!r} for parameter '{key}': expected a string.")
    found = str(value)
    if "\x00" in found or (not found.isascii() and _unpaired(found)):
        raise invalid(f"Invalid value for parameter '{key}': it holds a NUL character or "
                      "text that is not valid Unicode.")
    return found


def _unpaired(value: str) -> bool:
    """Whether ``value`` holds a lone surrogate (no database stores one)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def need(data: Mapping[str, Any], key: str) -> str:
    found = text(data, key)
    assert found is not None
    return found


def integer(data: Mapping[str, Any], key: str, default: int | None = None) -> int | None:
    """An int64 field (proto3 JSON sends them as numbers or as strings)."""
    value = data.get(key)
    if value is None or value == "":
        return default
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid value {value!r} for parameter '{key}': expected an "
                      "integer.") from None


def number(value: Any, key: str) -> float:
    """A double field: a number, or ``"NaN"``/``"Infinity"``/``"-Infinity"``."""
    if isinstance(value, bool):
        raise invalid(f"Invalid value {value!r} for metric '{key}': expected a number.")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise invalid(f"Invalid value {value!r} for metric '{key}': expected a number.")


def items(data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """A repeated message field: a list of objects (missing: empty)."""
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise invalid(f"Invalid value for parameter '{key}': expected a list of objects.")
    return value


def strings(data: Mapping[str, Any], key: str) -> list[str]:
    value = data.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise invalid(f"Invalid value for parameter '{key}': expected a list of strings.")
    return [str(v) for v in value]


def key_values(data: Mapping[str, Any], key: str) -> dict[str, str]:
    """``[{key, value}]`` (tags, params) as a dict; a missing value is the empty string."""
    out: dict[str, str] = {}
    for item in items(data, key):
        name = text(item, "key")
        assert name is not None
        value = item.get("value", "")
        out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


def query(request: Request) -> dict[str, Any]:
    """A GET's query arguments (a repeated key becomes a list)."""
    out: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in out:
            prior = out[key]
            out[key] = [*prior, value] if isinstance(prior, list) else [prior, value]
        else:
            out[key] = value
    return out


# -- writing replies --------------------------------------------------------------------

def double(value: float | None) -> float | str:
    """A double as proto3 JSON writes it (NaN and infinities as strings)."""
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def pairs(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted(values.items())]


def clean(message: dict[str, Any]) -> dict[str, Any]:
    """Drop empty fields, as proto3 JSON leaves them out."""
    return {k: v for k, v in message.items() if v is not None and v not in ([], {})}
