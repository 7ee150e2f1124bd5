"""Time-ordered identifiers.

Ids are UUIDv7 (RFC 9562 §5.7) written as 32 lowercase hex digits: the first 48 bits are
the Unix time in milliseconds, so ids sort by creation time as plain strings, which keeps
B-tree inserts append-only and makes "newest first" a cheap index scan.
"""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_id() -> str:
    """A new 32-hex-digit UUIDv7; strictly increasing within one process."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            # Same (or an earlier, after a clock step) millisecond: keep order with a
            # 12-bit counter in rand_a (RFC 9562 §6.2, method 1); borrow the next ms on overflow.
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:
                ms += 1
                _counter = 0
        else:
            _counter = 0
        _last_ms = ms
        counter = _counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
    return f"{value:032x}"


def id_time_ms(identifier: str) -> int:
    """The creation time (Unix ms) encoded in an id made by :func:`new_id`."""
    return int(identifier[:12], 16)


SHORT_LEN = 12


def short_id(identifier: str) -> str:
    """The last 12 hex digits: the random part, so runs made in the same millisecond differ.

    (A prefix of a time-ordered id is its timestamp, which is shared by ids created
    together.) Commands accept a unique prefix *or* suffix of an id.
    """
    return identifier[-SHORT_LEN:]
