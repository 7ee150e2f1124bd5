"""A run in progress: the object ``start_run`` returns and every ``log_*`` call goes to."""

from __future__ import annotations

import contextlib
import math
import numbers
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mloop.core.clock import now_ms
from mloop.core.ids import short_id
from mloop.core.redact import get_logger
from mloop.errors import InvalidMetricError, MloopError, RunStateError
from mloop.tracking import artifacts as _artifacts
from mloop.tracking import records
from mloop.tracking.model import ArtifactInfo, Run, RunStatus

if TYPE_CHECKING:
    from mloop.tracking.tracker import Tracker

log = get_logger(__name__)


class Terminated(SystemExit):
    """Raised in the main thread when the process receives SIGTERM during a run."""


def status_for(exc_type: type[BaseException] | None, exc: BaseException | None) -> RunStatus:
    """FINISHED on success, KILLED on Ctrl-C or SIGTERM, FAILED on any other exception."""
    if exc_type is None:
        return RunStatus.FINISHED
    if issubclass(exc_type, KeyboardInterrupt | Terminated):
        return RunStatus.KILLED
    if issubclass(exc_type, SystemExit):
        code = getattr(exc, "code", None)
        return RunStatus.FINISHED if code in (None, 0) else RunStatus.FAILED
    return RunStatus.FAILED


def _metric_value(key: str, value: Any) -> float | None:
    """A metric value as stored: a float, with NaN as None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        # numpy scalars are numbers.Real; 0-d arrays and tensors expose .item()
        item = getattr(value, "item", None)
        if callable(item) and getattr(value, "size", 1) == 1:
            return _metric_value(key, item())
        raise InvalidMetricError(
            f"Metric {key!r} must be a real number, got {type(value).__name__} {value!r}. "
            "Log text with set_tag or log_text, and booleans as 0/1.")
    number = float(value)
    return None if math.isnan(number) else number


class ActiveRun:
    """A run being logged to. Use it as a context manager or call :meth:`end`."""

    def __init__(self, tracker: Tracker, run_id: str, name: str, experiment: str,
                 parent_id: str | None) -> None:
        self.tracker = tracker
        self.id = run_id
        self.name = name
        self.experiment = experiment
        self.parent_id = parent_id
        self.status = RunStatus.RUNNING
        self._params: dict[str, str] = {}
        self._next_step: dict[str, int] = {}
        self._lock = threading.Lock()
        self._writer = tracker.writer

    def __repr__(self) -> str:
        return f"<ActiveRun {self.id} {self.name!r} {self.status}>"

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.end(status_for(exc_type, exc))
        except MloopError as err:
            if exc is None:
                raise
            # The exception in flight says what went wrong (often the same full disk).
            log.warning("mloop: while ending run %s: %s", short_id(self.id), err.message)

    @property
    def ended(self) -> bool:
        return self.status is not RunStatus.RUNNING

    def _check_open(self) -> None:
        if self.status is not RunStatus.RUNNING:
            raise RunStateError(f"Run {short_id(self.id)} has ended ({self.status}); start a new "
                                "run (or resume it with start_run(run_id=...)) to log more.")

    # -- metrics ---------------------------------------------------------------------

    def log_metric(self, key: str, value: Any, step: int | None = None,
                   timestamp: int | None = None) -> None:
        """Log one point. ``step`` defaults to one past this key's last step (0 first)."""
        if self.status is not RunStatus.RUNNING:
            self._check_open()
        v = _metric_value(key, value)
        if key not in self._next_step:
            records.check_key(key, "metric")
        step = self._next_step.get(key, 0) if step is None else _int_step(key, step)
        self._next_step[key] = step + 1
        ts = now_ms() if timestamp is None else _int_step(key, timestamp, "Timestamp")
        self._writer.add((self.id, key, step, ts, v))

    def log_metrics(self, values: Mapping[str, Any], step: int | None = None) -> None:
        """Log several metrics at the same step and time."""
        self._check_open()
        ts = now_ms()
        points = []
        for key, value in values.items():
            v = _metric_value(key, value)
            records.check_key(key, "metric")
            s = self._next_step.get(key, 0) if step is None else _int_step(key, step)
            self._next_step[key] = s + 1
            points.append((self.id, key, s, ts, v))
        self._writer.extend(points)

    # -- params and tags -------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        """Log one param; params are immutable (same value again is fine)."""
        self.log_params({key: value})

    def log_params(self, values: Mapping[str, Any]) -> None:
        """Log several params in one transaction."""
        self._check_open()
        new = records.stringify_params(values)
        with self._lock:
            # The cache holds every param stored for this run (a new run starts empty, a
            # resumed one loads them), so conflicts show here without a query, and keys
            # it lacks can be inserted straight away. A concurrent writer in another
            # process trips the primary key; then the store decides, key by key.
            records.raise_on_conflict({k: (self._params[k], v) for k, v in new.items()
                                       if k in self._params and self._params[k] != v})
            fresh = {k: v for k, v in new.items() if k not in self._params}
            if not fresh:
                return
            self.tracker.runs.log_params(self.id, fresh)
            self._params.update(fresh)

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag (tags are mutable; setting one again replaces it)."""
        self.set_tags({key: value})

    def set_tags(self, values: Mapping[str, Any]) -> None:
        """Set several tags in one transaction."""
        self._check_open()
        clean = records.stringify_tags(values)
        if clean:
            self.tracker.runs.set_tags(self.id, clean)

    def set_seed(self, seed: int) -> None:
        """Record the seed this run uses (``seed_everything`` calls this for you)."""
        self.tracker.runs.set_seed(self.id, seed)

    # -- artifacts -------------------------------------------------------------------

    def log_artifact(self, local_path: str | Path,
                     artifact_path: str | None = None) -> list[ArtifactInfo]:
        """Store a file (or a whole folder, under its own name) with the run."""
        self._check_open()
        return _artifacts.log_path(self.tracker.project, self.id, local_path, artifact_path)

    def log_artifacts(self, local_dir: str | Path,
                      artifact_path: str | None = None) -> list[ArtifactInfo]:
        """Store the contents of a folder with the run (under ``artifact_path``)."""
        self._check_open()
        return _artifacts.log_path(self.tracker.project, self.id, local_dir, artifact_path,
                                   contents_only=True)

    def log_text(self, text: str, artifact_file: str) -> ArtifactInfo:
        """Store ``text`` (UTF-8) as an artifact file."""
        self._check_open()
        return _artifacts.log_bytes(self.tracker.project, self.id, text.encode(), artifact_file)

    def log_dict(self, obj: Any, artifact_file: str) -> ArtifactInfo:
        """Store a dict as JSON (or YAML for .yaml/.yml names)."""
        self._check_open()
        data = _artifacts.dict_bytes(obj, artifact_file)
        return _artifacts.log_bytes(self.tracker.project, self.id, data, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> ArtifactInfo:
        """Store a matplotlib figure as an image (format from the file name)."""
        self._check_open()
        data = _artifacts.figure_bytes(figure, artifact_file)
        return _artifacts.log_bytes(self.tracker.project, self.id, data, artifact_file)

    # -- ending ----------------------------------------------------------------------

    def end(self, status: RunStatus | str = RunStatus.FINISHED) -> None:
        """Flush the run's metrics and mark it ended; a second call does nothing."""
        final = RunStatus(status)
        with self._lock:
            if self.status is not RunStatus.RUNNING:
                return
            self.status = final
        self.tracker.disown(self.id)  # before the end is written: no beat may undo it
        try:
            if self.tracker.project.remote:
                self._writer.end_remote_run(self.id, final, now_ms())
            else:
                store = self.tracker.project.store
                self._writer.flush(
                    then=lambda conn: records.set_status(store, conn, self.id, final))
        except MloopError:
            # The points could not be written (a full disk, the database gone): record
            # the end on its own, FAILED since not all it logged is stored; the error
            # raised says what was not written (the points stay in memory).
            ended = RunStatus.FAILED if final is RunStatus.FINISHED else final
            with contextlib.suppress(Exception):
                self.tracker.runs.set_status(self.id, ended)
            raise
        finally:
            self.tracker.forget(self)

    def flush(self) -> None:
        """Make every point logged so far durable now."""
        self._writer.flush()

    def to_run(self) -> Run:
        """The run as stored right now (flushes pending metrics first)."""
        self._writer.flush()
        return records.get_run(self.tracker.project, self.id)


_INT64 = 2**63  # steps and timestamps are BIGINT columns


def _int_step(key: str, step: Any, what: str = "Step") -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or \
            not -_INT64 <= int(step) < _INT64:
        raise InvalidMetricError(f"{what} of metric {key!r} must be an integer that fits in "
                                 f"64 bits, got {step!r}.")
    return int(step)
