"""Wall-clock time in the unit the store keeps: integer milliseconds since the Unix epoch."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime

from mloop.errors import InvalidInputError

_UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def now_ms() -> int:
    """Current time in Unix milliseconds."""
    return time.time_ns() // 1_000_000


def ms_to_datetime(ms: int | None) -> datetime | None:
    """Unix milliseconds to an aware UTC datetime (``None`` stays ``None``)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def format_ms(ms: int | None) -> str:
    """Unix milliseconds as ``YYYY-MM-DD HH:MM:SS`` in UTC, or ``-``."""
    dt = ms_to_datetime(ms)
    return "-" if dt is None else dt.strftime("%Y-%m-%d %H:%M:%S")


def format_duration(ms: int | None) -> str:
    """A duration in ms as ``850ms``, ``12.3s``, ``4m05s`` or ``2h03m``."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def parse_duration(text: str | int | float) -> int:
    """``"90s"``, ``"10m"``, ``"1h"``, ``"7d"``, ``"2w"`` (or seconds as a number) → ms."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        ms = text * 1000
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(text))
        if not match:
            raise InvalidInputError(f"Cannot read the duration {text!r}: use a number and a "
                                    "unit such as 90s, 10m, 1h, 7d or 2w.")
        ms = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(ms) or ms < 1 or ms > 100 * 365 * 86_400_000:
        raise InvalidInputError(f"A duration must be between 1 ms and 100 years, not {text!r}.")
    return int(ms)
