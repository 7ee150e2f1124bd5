"""The federation's wire protocol, shared by the server and the client runtime.

Clients only connect out (they may sit behind NAT): each ``join``s, then long-polls
``GET /fl/v1/task?after=<last task id>`` and answers each task with
``POST /fl/v1/result/<task id>``. Weights travel as uncompressed ``.npz``
(:mod:`.arrays`), everything else as JSON. Every request carries
``Authorization: Bearer <token>`` and, after joining, ``X-FL-Session``.

Task kinds: ``init`` (send your initial weights), ``fit``, ``evaluate``, ``secagg``
(one step of secure aggregation; ``step`` says which), ``done`` (training is over: exit).
A task id is unique within a server's life; a result for a task the server no longer
waits for (the round closed, the client re-joined) gets 409 and is dropped.
"""

from __future__ import annotations

import re
from enum import StrEnum

PREFIX = "/fl/v1"
SESSION_HEADER = "X-FL-Session"
NPZ = "application/x-npz"
JSON = "application/json"
#: a client name: what the run records as ``clients:/<federation>/<name>``
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
#: longest long-poll a client may ask for, in seconds
MAX_WAIT = 60.0


class TaskKind(StrEnum):
    INIT = "init"
    FIT = "fit"
    EVALUATE = "evaluate"
    SECAGG = "secagg"
    DONE = "done"
    WAIT = "wait"  # nothing yet: poll again


__all__ = ["JSON", "MAX_WAIT", "NAME_RE", "NPZ", "PREFIX", "SESSION_HEADER", "TaskKind"]
