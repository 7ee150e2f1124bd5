"""Which arm answers a request: a weighted draw, or a sticky key hashed onto the weights.

Pure functions, no I/O. A :class:`Split` is the arms' cumulative weights (arms at 0%
left out, so they are never chosen). A request without a key draws a uniform number; a
request with one (``sticky``: a request field, or the ``x-mloop-key`` header) maps the
key's BLAKE2b hash to a number in [0, 1) — the same in every process and on every
replica, unlike Python's salted ``hash`` — so one user stays in one arm for as long as
the weights stay.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mloop.errors import InvalidInputError

__all__ = ["KEY_HEADER", "Split", "key_point", "request_key"]

KEY_HEADER = "x-mloop-key"


@dataclass(frozen=True)
class Split:
    """Arms with a positive weight and their cumulative shares (the last is 1)."""

    arms: tuple[str, ...]
    bounds: tuple[float, ...]

    @classmethod
    def of(cls, weights: Mapping[str, float]) -> Split:
        """From percent (or any non-negative weights) by arm; InvalidInputError when no
        arm has a positive weight."""
        arms = tuple(a for a, w in weights.items() if w > 0)
        total = sum(weights[a] for a in arms)
        if not arms:
            raise InvalidInputError("No arm has a positive weight, so no arm can answer; "
                                    "give one arm a weight above 0.")
        running, bounds = 0.0, []
        for arm in arms:
            running += weights[arm]
            bounds.append(running / total)
        bounds[-1] = 1.0  # no float sum may leave a gap at the top
        return cls(arms, tuple(bounds))

    def at(self, point: float) -> str:
        """The arm whose share covers ``point`` in [0, 1)."""
        return self.arms[min(bisect.bisect_right(self.bounds, point), len(self.arms) - 1)]

    def pick(self, key: str | None = None, rng: random.Random | None = None) -> str:
        """The arm for a request: by ``key`` when given, else by a random draw."""
        if len(self.arms) == 1:
            return self.arms[0]
        if key is not None:
            return self.at(key_point(key))
        return self.at((rng or _RNG).random())


_RNG = random.Random()


def key_point(key: str) -> float:
    """``key`` hashed (BLAKE2b, 8 bytes) to a number in [0, 1), stable everywhere."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def request_key(body: Any, field: str | None, headers: Mapping[str, str]) -> str | None:
    """The sticky key of a request: ``field`` of the first row (a ``/predict`` record, a
    ``columns``/``data`` or ``dataframe_split`` column, ``dataframe_records``, or the
    V2 input tensor of that name), else the ``x-mloop-key`` header, else None."""
    if field is not None and isinstance(body, dict):
        found = _field_of(body, field)
        if found is not None:
            return str(found)
    return headers.get(KEY_HEADER)


def _field_of(body: dict[str, Any], field: str) -> Any:
    for records in (body.get("records"), body.get("dataframe_records")):
        if isinstance(records, list) and records and isinstance(records[0], dict):
            return records[0].get(field)
    for split in (body, body.get("dataframe_split")):
        if isinstance(split, dict):
            columns, data = split.get("columns"), split.get("data")
            if (isinstance(columns, list) and field in columns and isinstance(data, list)
                    and data and isinstance(data[0], list)):
                index = columns.index(field)
                return data[0][index] if index < len(data[0]) else None
    inputs = body.get("inputs")
    if isinstance(inputs, list):
        for tensor in inputs:
            if isinstance(tensor, dict) and tensor.get("name") == field:
                return _first(tensor.get("data"))
    return None


def _first(data: Any) -> Any:
    """The first scalar of a (possibly nested) V2 ``data`` list."""
    while isinstance(data, list):
        if not data:
            return None
        data = data[0]
    return data
