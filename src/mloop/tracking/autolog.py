"""``mloop.autolog()``: track scikit-learn training without changing the training code.

Every estimator class that defines ``fit`` is wrapped. On the outermost ``fit`` (a
pipeline's inner fits are not logged twice) the wrapper logs the estimator's params,
its training score and fit time, and the fitted model as an artifact, into the active run
or, when there is none, into a run it starts and ends around the ``fit``. Logging
problems are reported as log warnings and never break the user's training.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

from mloop.core.redact import get_logger
from mloop.errors import MloopError
from mloop.tracking import lifecycle
from mloop.tracking.model import RunStatus

log = get_logger(__name__)
_patched: dict[type, Any] = {}
_config: dict[str, Any] = {"log_models": True, "experiment": None}
_local = threading.local()
_SIMPLE = (str, int, float, bool, type(None))


def autolog(*, disable: bool = False, log_models: bool = True,
            experiment: str | None = None) -> None:
    """Turn scikit-learn autologging on (or off with ``disable=True``).

    ``log_models`` logs each fitted model as the run's ``model`` (skops, as
    :func:`mloop.log_model` does; load it with ``mloop.load_model("runs:/<id>/model")``);
    ``experiment`` names the experiment of runs that autolog starts itself.
    """
    if disable:
        for cls, original in _patched.items():
            cls.fit = original  # type: ignore[attr-defined]
        _patched.clear()
        return
    _config.update(log_models=log_models, experiment=experiment)
    if _patched:
        return
    from sklearn.utils import all_estimators

    for _name, cls in all_estimators():
        if "fit" in cls.__dict__:
            original = cls.__dict__["fit"]
            _patched[cls] = original
            cls.fit = _wrap(original)


def _wrap(original: Any) -> Any:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "depth", 0):
            return original(self, *args, **kwargs)
        _local.depth = 1
        try:
            return _logged_fit(original, self, args, kwargs)
        finally:
            _local.depth = 0

    fit.__mloop_autolog__ = True  # type: ignore[attr-defined]
    return fit


def _logged_fit(original: Any, est: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    from mloop.tracking import fluent

    run = lifecycle.active_run()
    own = run is None
    if own:
        run = fluent.start_run(experiment=_config["experiment"], name=type(est).__name__,
                               tags={"mloop.autolog": "sklearn"})
    assert run is not None
    start = time.perf_counter()
    try:
        result = original(est, *args, **kwargs)
    except BaseException:
        if own:
            run.end(RunStatus.FAILED)
        raise
    elapsed = time.perf_counter() - start
    try:
        _log_fit(run, est, args, kwargs, elapsed)
    except (MloopError, OSError, ValueError, TypeError) as exc:
        log.warning("mloop.autolog could not log %s.fit: %s", type(est).__name__, exc)
    if own:
        run.end()
    return result


def _log_fit(run: Any, est: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
             elapsed: float) -> None:
    params = {k: v for k, v in est.get_params(deep=True).items() if isinstance(v, _SIMPLE)}
    try:
        run.log_params(params)
    except MloopError as exc:  # e.g. a second fit with other params in the same run
        log.warning("mloop.autolog: params not logged: %s", exc)
    run.set_tag("estimator_class", f"{type(est).__module__}.{type(est).__name__}")
    metrics = {"training_fit_time_s": elapsed}
    X = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y")
    if y is not None and hasattr(est, "score"):
        try:
            metrics["training_score"] = float(est.score(X, y))
        except Exception as exc:  # some estimators cannot score their own input
            log.debug("mloop.autolog: no training score: %s", exc)
    run.log_metrics(metrics)
    if _config["log_models"]:
        # through the scikit-learn flavor (skops, no pickle), so that
        # mloop.load_model("runs:/<id>/model") loads it without running stored code
        from mloop.registry.models import log_model

        project = run.tracker.project
        try:
            log_model(project, run.id, est, "model", input_example=_head(X), onnx=False)
        except MloopError:  # an input it cannot describe (sparse, ragged): no signature
            log_model(project, run.id, est, "model", onnx=False)


def _head(X: Any) -> Any:
    """The first rows of ``X`` as the input example, or None when it cannot be sliced."""
    try:
        return X[:5] if X is not None else None
    except (TypeError, KeyError, IndexError):
        return None
