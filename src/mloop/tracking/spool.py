"""Metric points kept on disk while the mloop server is unreachable, sent when it returns.

A run logging to a team server never waits on the network, and a server that goes away
mid-run loses nothing: each batch the writer could not send is written to
``<project>/.mloop/spool/metrics/`` as one JSON file (atomically: temp file → rename),
with, at the end of a run, the status the run ended with. Batches are sent again in the
order they were written, before newer points, by the writer of any later process of the
project (the next run, ``mloop runs sync``): a file is claimed by renaming it first, so
two processes never send the same batch.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from mloop.core.redact import get_logger
from mloop.errors import ServiceUnavailableError
from mloop.repositories.runs import MetricPoint, Runs, RunStatus

log = get_logger(__name__)
SUFFIX = ".json"


class Spool:
    """The on-disk queue of one project's unsent metric batches."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __repr__(self) -> str:
        return f"Spool({str(self.folder)!r})"

    def put(self, points: list[MetricPoint],
            status: tuple[str, str, int | None] | None = None) -> Path:
        """Keep a batch (and a run's final status) on disk; returns its file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        path = self.folder / name
        tmp = path.with_suffix(".tmp")
        body: dict[str, Any] = {"points": [list(p) for p in points], "status": status}
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(body, f, allow_nan=True)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        return path

    def pending(self) -> list[Path]:
        """The batches waiting, oldest first."""
        try:
            return sorted(p for p in self.folder.iterdir() if p.name.endswith(SUFFIX))
        except FileNotFoundError:
            return []

    def drain(self, runs: Runs) -> int:
        """Send every waiting batch in order; returns the points sent. Stops (raising
        :class:`ServiceUnavailableError`) at the first batch the server cannot take."""
        sent = 0
        for path in self.pending():
            claimed = path.with_name(path.name + f".sending-{os.getpid()}")
            try:
                path.rename(claimed)
            except FileNotFoundError:  # another process took it
                continue
            try:
                body = json.loads(claimed.read_text(encoding="utf-8"))
                points: list[MetricPoint] = [tuple(p) for p in body["points"]]
                if points:
                    runs.write_points(points)
                if body.get("status"):
                    run_id, status, end = body["status"]
                    runs.set_status(run_id, RunStatus(status), end)
            except ServiceUnavailableError:
                claimed.rename(path)  # back in the queue, in its place
                raise
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("mloop: the spooled metric batch %s cannot be read (%s); it is "
                            "left as %s", path.name, exc, claimed.name)
                continue
            claimed.unlink()
            sent += len(points)
        return sent
