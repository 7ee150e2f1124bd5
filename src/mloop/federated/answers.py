"""What a client may answer, checked where it arrives.

A client is authenticated, not trusted: every answer is parsed here before a round sees
it, and one that does not fit (a JSON body where weights belong, ``num_examples`` of
``1e400``, a metric named with a newline, weights with NaN) is refused with a 422 to
that client alone and recorded as its failure; the round goes on without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from mloop.core.redact import get_logger
from mloop.errors import InvalidInputError, MloopError
from mloop.federated import arrays
from mloop.federated.types import Weights

#: the longest metric name a client may report (it is logged as ``fed_<name>``)
MAX_METRIC_NAME = 200
MAX_METRICS = 64
MAX_EXAMPLES = 2**53

Parser = Callable[[Any], Any]

log = get_logger(__name__)


def metrics(value: Any) -> dict[str, float]:
    """A client's metrics as the run can log them: one-line names of at most 200
    characters, finite numbers. What does not fit (``f1: NaN`` on a shard without
    positives, a string, a name with a newline) is left out with a warning — a metric is
    not a reason to lose the update; more than 64 entries, or not a JSON object, is."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError("metrics must be a JSON object of numbers")
    if len(value) > MAX_METRICS:
        raise InvalidInputError(f"at most {MAX_METRICS} metrics per answer")
    out: dict[str, float] = {}
    for key, number in value.items():
        if isinstance(number, bool):
            number = int(number)
        if not (isinstance(key, str) and 0 < len(key) <= MAX_METRIC_NAME and
                key.isprintable() and key.strip() == key):
            log.warning("a client's metric %r left out: not a one-line name of at most %d "
                        "characters", str(key)[:70], MAX_METRIC_NAME)
        elif not isinstance(number, int | float) or not math.isfinite(float(number)):
            log.warning("a client's metric %r left out: %r is not a finite number", key[:70],
                        str(number)[:40])
        elif key == "clipped" and number not in (0, 1):  # DP's per-client clipping flag
            log.warning("a client's clipped flag left out: %r is not 0 or 1", number)
        else:
            out[key] = float(number)
    return out


def examples(value: Any) -> int:
    """``num_examples``: an integer from 0 to 2^53."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EXAMPLES:
        raise InvalidInputError("num_examples must be an integer from 0 to 2^53")
    return value


def _npz(answer: Any, what: str) -> tuple[Weights, dict[str, Any]]:
    if not (isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[1], dict)):
        raise InvalidInputError(f"{what} must be sent as weights (.npz), not JSON")
    return answer[0], answer[1]


def fit_parser(current: Weights) -> Parser:
    """A ``fit`` answer: an update shaped like ``current``, finite, with its examples."""
    def parse(answer: Any) -> tuple[Weights, int, dict[str, float]]:
        delta, meta = _npz(answer, "a fit answer")
        arrays.check_like(delta, current)
        return delta, examples(meta.get("num_examples")), metrics(meta.get("metrics"))
    return parse


def masked_parser(length: int) -> Parser:
    """A masked ``fit`` answer under secure aggregation: one uint64 vector of ``length``."""
    def parse(answer: Any) -> tuple[np.ndarray, dict[str, float]]:
        vectors, meta = _npz(answer, "a masked input")
        if len(vectors) != 1 or vectors[0].dtype != np.uint64 or vectors[0].shape != (length,):
            raise InvalidInputError(f"a masked input is one uint64 vector of {length} values")
        return vectors[0], metrics(meta.get("metrics"))
    return parse


def initial(answer: Any) -> Weights:
    """An ``init`` answer: at least one finite numeric array."""
    weights, _meta = _npz(answer, "initial weights")
    if not weights:
        raise InvalidInputError("initial weights hold no array")
    arrays.check_like(weights, weights, "initial weights")
    return weights


def evaluate(answer: Any) -> tuple[float, int, dict[str, float]]:
    """An ``evaluate`` answer: ``{"loss", "num_examples", "metrics"}``."""
    if not isinstance(answer, dict):
        raise InvalidInputError("an evaluate answer is a JSON object")
    loss = answer.get("loss")
    if isinstance(loss, bool) or not isinstance(loss, int | float) or \
            not math.isfinite(float(loss)):
        raise InvalidInputError("loss must be a finite number")
    return float(loss), examples(answer.get("num_examples")), metrics(answer.get("metrics"))


def secagg(answer: Any) -> Any:
    """A secure aggregation step's JSON message, decoded (bytes from base64)."""
    from mloop.federated import secagg as protocol

    try:
        return protocol.from_json(answer)
    except MloopError:
        raise
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise InvalidInputError(f"not a secure aggregation message: {exc}") from None


__all__ = ["MAX_EXAMPLES", "MAX_METRICS", "MAX_METRIC_NAME", "evaluate", "examples", "fit_parser",
           "initial", "masked_parser", "metrics", "secagg"]
