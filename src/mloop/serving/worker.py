"""``mloop worker``: model-on-demand. Claims jobs from a broker, predicts, stores results.

Each thread claims up to a batch of jobs for its model, predicts them in one vectorised
call (a failing batch is retried job by job, so one bad payload fails alone), writes the
results and acknowledges. Every ``follow`` seconds the worker resolves its model ref
again: when an alias such as ``champion`` moves, the new version is loaded and used for
the next claims — no job is dropped, and the app that submits jobs is not redeployed.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from typing import Any

from mloop.core.redact import redact
from mloop.errors import MloopError
from mloop.project import Project
from mloop.serving.broker import Broker, Job


class Worker:
    def __init__(self, project: Project, model: str, broker: Broker, *, concurrency: int = 2,
                 follow: float = 5.0, batch: int = 64, log_predictions: bool = True,
                 allow_pickle: bool | None = None) -> None:
        self.project = project
        self.model_ref = model
        self.broker = broker
        self.concurrency = concurrency
        self.follow = follow
        self.batch = batch
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"
        self.processed = 0
        self.failed = 0
        self.reconnects = 0
        self._lock = threading.Lock()
        self._loaded: tuple[str, Any] | None = None
        self._checked = 0.0
        self.log_predictions = log_predictions
        self.allow_pickle = allow_pickle  # None: the user's setting (off)
        self._logger: Any = None

    def model(self) -> tuple[str, Any]:
        """(version URI, loaded model), reloaded when the ref now names another version."""
        from mloop.registry.models import get_version, load_model

        with self._lock:
            now = time.monotonic()
            if self._loaded is None or now - self._checked >= self.follow:
                self._checked = now
                uri = get_version(self.project, self.model_ref).uri \
                    if self.model_ref.startswith("models:/") else self.model_ref
                if self._loaded is None or self._loaded[0] != uri:
                    try:
                        self._loaded = (uri, load_model(self.project, uri,
                                                        allow_pickle=self.allow_pickle))
                    except MloopError as exc:  # e.g. the alias moved to a refused pickle
                        if self._loaded is None:
                            raise
                        print(f"mloop worker: still answering with {self._loaded[0]}; "
                              f"{uri} cannot be loaded: {exc}", file=sys.stderr)
            return self._loaded

    def load(self) -> None:
        """Load what answers jobs; raises (a bad ref, an unsafe model) before any claim."""
        self.model()

    def run(self, stop: threading.Event | None = None, max_jobs: int | None = None) -> int:
        """Serve until ``stop`` is set (or ``max_jobs`` are done); returns the count."""
        stop = stop or threading.Event()
        self.load()  # load (and fail on a bad ref) before claiming anything
        if self.log_predictions:  # answered jobs join the prediction log, as served ones
            from mloop.serving.predlog import PredictionLogger, sharer

            self._logger = PredictionLogger(self.project.root / ".mloop" / "predictions",
                                            share=sharer(self.project))
        threads = [threading.Thread(target=self._loop, args=(stop, max_jobs, i), daemon=True,
                                    name=f"mloop-worker-{i}")
                   for i in range(self.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self._logger is not None:
            self._logger.close()
            self._logger = None
        return self.processed

    def _loop(self, stop: threading.Event, max_jobs: int | None, index: int) -> None:
        consumer = f"{self.consumer}-{index}"
        pause = 0.0
        while not stop.is_set():
            if max_jobs is not None and self.processed + self.failed >= max_jobs:
                stop.set()
                return
            try:
                jobs = self.broker.claim(self.model_ref, consumer, count=self.batch,
                                         block_s=0.5)
                if jobs:
                    self.handle(jobs)
                pause = 0.0
            except (ConnectionError, TimeoutError, OSError) as exc:
                # the broker went away: wait (1, 2, 4 … 30 s) and try again; claimed jobs
                # that were not answered come back after the visibility timeout
                pause = min(30.0, max(1.0, pause * 2))
                self.reconnects += 1
                print(redact(f"mloop worker: broker unreachable ({exc}); retrying in "
                             f"{pause:.0f} s"), file=sys.stderr)
                stop.wait(pause)

    def handle(self, jobs: list[Job]) -> None:
        import pandas as pd

        uri, loaded = self.model()
        began = time.perf_counter()
        try:
            frames = [_frame(j.payload) for j in jobs]
            merged = pd.concat(frames, ignore_index=True)
            pred, proba = loaded.predict_both(merged)
        except Exception:  # one payload spoils the batch: find which, job by job
            for job in jobs:
                self._one(job, uri, loaded)
            return
        latency = (time.perf_counter() - began) * 1000
        start = 0
        for job, frame in zip(jobs, frames, strict=True):
            end = start + len(frame)
            part = None if proba is None else proba[start:end]
            self.broker.complete(job, {"model": uri, **_outputs(pred[start:end], part)})
            self._log(uri, job, frame, pred=pred[start:end], proba=part, latency_ms=latency)
            start = end
        with self._lock:
            self.processed += len(jobs)

    def _log(self, uri: str, job: Job, frame: Any, *, pred: Any, proba: Any,
             latency_ms: float) -> None:
        if self._logger is None or not uri.startswith("models:/"):
            return
        name, _, version = uri[len("models:/"):].rpartition("/")
        if version.isdigit():
            self._logger.log(name, int(version), job.id, frame=frame, pred=pred, proba=proba,
                             latency_ms=latency_ms)

    def _one(self, job: Job, uri: str, loaded: Any) -> None:
        began = time.perf_counter()
        try:
            frame = _frame(job.payload)
            pred, proba = loaded.predict_both(frame)
        except Exception as exc:  # the job's own error, kept for the dead-letter list
            self.broker.fail(job, redact(f"{type(exc).__name__}: {exc}"))
            with self._lock:
                self.failed += 1
            return
        self.broker.complete(job, {"model": uri, **_outputs(pred, proba)})
        self._log(uri, job, frame, pred=pred, proba=proba,
                  latency_ms=(time.perf_counter() - began) * 1000)
        with self._lock:
            self.processed += 1


def _frame(payload: Any) -> Any:
    import pandas as pd

    return pd.DataFrame(payload)


def _outputs(pred: Any, proba: Any) -> dict[str, list[Any]]:
    out = {"predictions": pred.tolist()}
    if proba is not None:
        out["probabilities"] = proba.tolist()
    return out
