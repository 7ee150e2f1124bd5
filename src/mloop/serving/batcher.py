"""Adaptive micro-batching: concurrent requests to one model become one vectorised predict.

Requests queue up while the model is busy; when it is free, everything waiting (up to
``max_batch_size`` rows) goes in one call. A lone request runs at once — batching adds
no latency when there is no concurrency — and ``max_delay`` (off by default) can hold a
batch open a little longer to fill it. The queue is bounded: when it is full the server
answers 503 with ``Retry-After`` instead of growing without limit.

One request never fails another: requests are checked against the signature before they
queue, and when a merged call still fails, the batch is split in halves and each tried
again, down to single requests, so only a request the model itself cannot take gets an
error (:class:`ModelFailed`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from mloop.errors import ModelFailedError, OverloadedError

# the names this module has always raised, now classes of the one error tree
Overloaded = OverloadedError
ModelFailed = ModelFailedError


@dataclass
class _Item:
    frame: Any  # a DataFrame, or an array for a model with a tensor signature
    future: asyncio.Future[tuple[Any, Any]]
    proba: bool


Outcome = tuple[Any, Any] | BaseException


def _merge(frames: list[Any]) -> Any:
    import pandas as pd

    from mloop.serving.protocol import Rows

    if all(isinstance(f, Rows) for f in frames):
        return Rows(np.concatenate([f.values for f in frames]), frames[0].names)
    if any(isinstance(f, pd.DataFrame) for f in frames):  # V2 matrices beside records
        return pd.concat([f.to_frame() if isinstance(f, Rows) else f for f in frames],
                         ignore_index=True)
    return np.concatenate([np.asarray(f) for f in frames])


class MicroBatcher:
    def __init__(self, predict: Callable[[Any, bool], tuple[Any, Any]], *,
                 max_batch_size: int = 64,
                 max_delay: float = 0.0, max_queue: int = 1024,
                 on_batch: Callable[[int], None] | None = None,
                 executor: ThreadPoolExecutor | None = None) -> None:
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=max_queue)
        # another batcher's thread, shared: their calls then take turns instead of
        # contending for the GIL (a shadow beside its primary)
        self._owns_executor = executor is None
        self.executor = executor or ThreadPoolExecutor(max_workers=1,
                                                       thread_name_prefix="mloop-predict")
        self._task: asyncio.Task[None] | None = None
        self._on_batch = on_batch

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        await self._queue.join()
        if self._task is not None:
            self._task.cancel()
        if self._owns_executor:
            self.executor.shutdown(wait=True)

    async def submit(self, frame: Any, *, proba: bool = True) -> tuple[Any, Any]:
        """(predictions, probabilities or None) for ``frame``; ``proba=False`` when the
        caller does not need probabilities (a batch computes them if any member does).
        Raises :class:`ModelFailed` when the model fails on ``frame`` itself."""
        future: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Item(frame, future, proba))
        except asyncio.QueueFull:
            raise Overloaded("The model's request queue is full.") from None
        return await future

    async def _collect(self) -> tuple[list[_Item], int]:
        """The next batch: what waits now (and, with ``max_delay``, what comes soon)."""
        first = await self._queue.get()
        batch = [first]
        rows = len(first.frame)
        deadline = time.monotonic() + self.max_delay
        while rows < self.max_batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), left)
                except TimeoutError:
                    break
            batch.append(item)
            rows += len(item.frame)
        return batch, rows

    def _call(self, batch: list[_Item]) -> list[Outcome]:
        """One outcome per request, from one merged call; when that fails, each half is
        tried again, down to single requests, so that only a request the model cannot
        take gets an error and a few bad requests cost O(log n) calls, not n (run in the
        predict thread: the event loop goes on meanwhile)."""
        try:
            if len(batch) == 1:
                return [self._predict(batch[0].frame, batch[0].proba)]
            pred, proba = self._predict(_merge([b.frame for b in batch]),
                                        any(b.proba for b in batch))
        except Exception as exc:
            if len(batch) == 1:  # the model's own failure on this request alone
                return [ModelFailed(exc)]
            half = len(batch) // 2
            return self._call(batch[:half]) + self._call(batch[half:])
        out: list[Outcome] = []
        start = 0
        for b in batch:
            end = start + len(b.frame)
            out.append((pred[start:end], None if proba is None else proba[start:end]))
            start = end
        return out

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch, rows = await self._collect()
            try:
                outcomes = await loop.run_in_executor(self.executor, self._call, batch)
            except Exception as exc:  # never let this loop die: every caller gets an answer
                outcomes = [ModelFailed(exc)] * len(batch)
            for b, outcome in zip(batch, outcomes, strict=True):
                if b.future.done():  # the caller went away
                    continue
                if isinstance(outcome, BaseException):
                    b.future.set_exception(outcome)
                else:
                    b.future.set_result(outcome)
            if self._on_batch is not None:
                self._on_batch(rows)
            for _ in batch:
                self._queue.task_done()
