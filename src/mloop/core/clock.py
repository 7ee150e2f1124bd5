"""Wall-clock time in the unit the store keeps: integer milliseconds since the Unix epoch."""

from __future__ import annotations

import time
from datetime import UTC, datetime


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
