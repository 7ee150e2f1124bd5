"""Numbers as people read them: counts with their noun ("1 job", "2 jobs"), sizes in
binary units ("1.5 MiB"), times as ISO 8601. Every message that prints a count uses
:func:`plural`, so no command says "1 warnings"; tables show :func:`human_size` while
``--json`` keeps the raw bytes.
"""

from __future__ import annotations

from mloop.core.clock import ms_to_datetime

# nouns whose plural is not noun + "s"
_IRREGULAR = {"entry": "entries", "dependency": "dependencies", "match": "matches",
              "index": "indexes", "child": "children", "batch": "batches"}


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``count`` with ``noun`` in the number it takes: ``plural(1, "job")`` is ``1 job``,
    ``plural(1200, "job")`` is ``1,200 jobs``; ``many`` gives an irregular plural."""
    if count == 1:
        return f"1 {noun}"
    return f"{count:,} {many or _IRREGULAR.get(noun) or noun + 's'}"


def human_size(n: int | None) -> str:
    """Bytes in binary units: ``512 B``, ``1.5 KiB``, ``3.2 MiB``, ``1.0 GiB`` (``-`` for
    unknown). Up to TiB; a negative size is shown as bytes."""
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if round(size, 1) < 1024 or unit == "TiB":
            break
    return f"{size:.1f} {unit}"


def iso_ms(ms: int | None) -> str | None:
    """Unix milliseconds as ISO 8601 in UTC with milliseconds
    (``2026-12-07T10:03:58.123+00:00``); ``None`` stays ``None``."""
    dt = ms_to_datetime(ms)
    return None if dt is None else dt.isoformat(timespec="milliseconds")
