"""Numbers for JSON output: JSON has no NaN or infinity."""

from __future__ import annotations

import math

__all__ = ["json_float"]


def json_float(value: float | None) -> float | str | None:
    """JSON has no NaN or infinity: spell them as strings, keep finite values as numbers."""
    if value is None:
        return None
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value
