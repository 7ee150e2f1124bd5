"""The prediction log: every served prediction, written in batches off the request path.

Rows (request id, time, model, version, inputs, outputs, latency) are queued in memory
and a background thread writes them as Parquet segments under
``<project>/.mloop/predictions/<model>/<version>/``, each written to a temporary name
and renamed, so a reader never sees half a file. Monitoring reads these segments.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any


class PredictionLogger:
    def __init__(self, root: Path, *, flush_rows: int = 10_000, flush_seconds: float = 1.0,
                 max_pending: int = 200_000) -> None:
        self.root = root
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_pending)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="mloop-predlog", daemon=True)
        self._thread.start()

    def log(self, model: str, version: int, request_id: str, *, inputs: Any, outputs: Any,
            latency_ms: float) -> None:
        """Queue one request's rows; never blocks (a full queue drops and counts)."""
        try:
            self._queue.put_nowait({
                "request_id": request_id, "time_ms": int(time.time() * 1000), "model": model,
                "version": version, "inputs": inputs, "outputs": outputs,
                "latency_ms": latency_ms})
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        """Write everything queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        pending: list[dict[str, Any]] = []
        last = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=self.flush_seconds)
            except queue.Empty:
                item = {}
            if item is None:
                self._write(pending)
                return
            if item:
                pending.append(item)
            if len(pending) >= self.flush_rows or (
                    pending and time.monotonic() - last >= self.flush_seconds):
                self._write(pending)
                pending, last = [], time.monotonic()

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        by_model: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for r in rows:
            by_model.setdefault((r["model"], r["version"]), []).append(r)
        for (model, version), items in by_model.items():
            table = pa.table({
                "request_id": [r["request_id"] for r in items],
                "time_ms": [r["time_ms"] for r in items],
                "version": [r["version"] for r in items],
                "inputs": [json.dumps(r["inputs"], default=str) for r in items],
                "outputs": [json.dumps(r["outputs"], default=str) for r in items],
                "latency_ms": [r["latency_ms"] for r in items]})
            folder = self.root / model / str(version)
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}.parquet"
            tmp = folder / f".{name}.tmp"
            pq.write_table(table, tmp)
            tmp.replace(folder / name)


def read_predictions(root: Path, model: str) -> Any:
    """Every logged prediction of ``model`` as a DataFrame (empty when none)."""
    import pandas as pd
    import pyarrow.parquet as pq

    files = sorted((root / model).glob("*/*.parquet"))
    if not files:
        return pd.DataFrame(columns=["request_id", "time_ms", "version", "inputs", "outputs",
                                     "latency_ms"])
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
