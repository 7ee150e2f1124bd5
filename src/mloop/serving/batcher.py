"""Adaptive micro-batching: concurrent requests to one model become one vectorised predict.

Requests queue up while the model is busy; when it is free, everything waiting (up to
``max_batch_size`` rows) goes in one call. A lone request runs at once — batching adds
no latency when there is no concurrency — and ``max_delay`` (off by default) can hold a
batch open a little longer to fill it. The queue is bounded: when it is full the server
answers 503 with ``Retry-After`` instead of growing without limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


class Overloaded(RuntimeError):
    """The request queue is full."""


@dataclass
class _Item:
    frame: Any
    future: asyncio.Future[tuple[Any, Any]]
    proba: bool


class MicroBatcher:
    def __init__(self, predict: Callable[[Any, bool], tuple[Any, Any]], *,
                 max_batch_size: int = 64,
                 max_delay: float = 0.0, max_queue: int = 1024,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mloop-predict")
        self._task: asyncio.Task[None] | None = None
        self._on_batch = on_batch

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        await self._queue.join()
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=True)

    async def submit(self, frame: Any, *, proba: bool = True) -> tuple[Any, Any]:
        """(predictions, probabilities or None) for ``frame``; ``proba=False`` when the
        caller does not need probabilities (a batch computes them if any member does)."""
        future: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Item(frame, future, proba))
        except asyncio.QueueFull:
            raise Overloaded("The model's request queue is full.") from None
        return await future

    async def _run(self) -> None:
        import pandas as pd

        loop = asyncio.get_running_loop()
        while True:
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
            frame = batch[0].frame if len(batch) == 1 else pd.concat(
                [b.frame for b in batch], ignore_index=True)
            try:
                pred, proba = await loop.run_in_executor(
                    self._executor, self._predict, frame, any(b.proba for b in batch))
            except Exception as exc:  # the model's own failure: every caller gets it
                for b in batch:
                    if not b.future.done():
                        b.future.set_exception(exc)
            else:
                start = 0
                for b in batch:
                    end = start + len(b.frame)
                    if not b.future.done():
                        b.future.set_result((pred[start:end],
                                             None if proba is None else proba[start:end]))
                    start = end
            if self._on_batch is not None:
                self._on_batch(rows)
            for _ in batch:
                self._queue.task_done()
