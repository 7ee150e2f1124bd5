"""``evaluate``: run a model on labelled data, measure it, check it, record the decision.

The report is stored with the model version (and the active run, as an artifact), so
``mloop models show`` can say whether a version passed, against which suite and when.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mloop import lineage
from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.core.process import current_user
from mloop.errors import InvalidInputError
from mloop.evaluation import metrics as M
from mloop.evaluation.checks import FAIL, WARN, CheckResult, Context, predictions, run_check
from mloop.evaluation.report import EvaluationReport
from mloop.evaluation.request import EvaluationRequest
from mloop.evaluation.rows import Rows, align, features, read_data
from mloop.evaluation.suite import Suite, check_suite, default_suite
from mloop.project import Project

SLICE_METRICS = {"classification": ("accuracy", "recall", "precision"),
                 "regression": ("mae", "rmse")}


def _training_rows(project: Project, model_uri: str) -> Any:
    """The dataset version the model's run read (through lineage), or None."""
    from mloop.registry.models import training_data

    ref = training_data(project, model_uri)
    if ref is None:
        return None
    from mloop import data as mdata

    try:
        return mdata.load(ref, project=project)
    except (InvalidInputError, OSError):
        return None


def _onnx_bytes(project: Project, model: str) -> bytes | None:
    from mloop.registry.models import resolve_source
    from mloop.tracking import artifacts

    run_id, path, digest = resolve_source(project, model)
    manifest = json.loads(project.objects.get_bytes(digest))
    return artifacts.read_artifact(project, run_id, f"{path}/{manifest['onnx']}")


def _metrics(model: Any, rows: Rows, pred: np.ndarray, score: np.ndarray | None, *,
             resamples: int, seed: int) -> dict[str, dict[str, float]]:
    """Every metric of the task with its bootstrap interval (all metrics share resamples)."""
    # the model's classes fix the positive class, even in a resample that lacks one
    labels = getattr(getattr(model, "model", None), "classes_", None) \
        if rows.task == "classification" else None
    weighted = M.Weighted(rows.task, rows.y, pred, score,
                          labels=labels if labels is not None and np.ndim(labels) == 1
                          else None)
    point = weighted.values()
    ci = weighted.intervals(resamples, seed=seed) if resamples else {}
    out: dict[str, dict[str, float]] = {}
    for name in M.METRICS:
        if name not in point or np.isnan(point[name]):
            continue
        entry = {"value": point[name]}
        if name in ci:
            entry["low"], entry["high"] = ci[name]
        out[name] = entry
    return out


def _slices(ctx: Context, columns: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """The task's slice metrics for each group of each of ``columns``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for column in columns:
        values = ctx.frame[column].astype(str).to_numpy()
        groups: dict[str, dict[str, float]] = {}
        for group in np.unique(values):
            mask = values == group
            stats = {"rows": float(mask.sum())}
            for name in SLICE_METRICS[ctx.task]:
                stats[name] = M.get_metric(name).fn(ctx.y[mask], ctx.pred[mask])
            groups[str(group)] = stats
        out[column] = groups
    return out


def cross_validate(model: Any, X: Any, y: np.ndarray, task: str, *, folds: int = 5,
                   seeds: int = 1, strategy: str = "auto", groups: Any = None
                   ) -> tuple[dict[str, dict[str, float]], list[dict[str, float]]]:
    """Refit clones of a scikit-learn model over folds x seeds (on two threads).

    Returns (mean, std and count per metric; the metrics of every fold with its seed and
    number)."""
    from sklearn.base import clone
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold, TimeSeriesSplit

    inner = getattr(model, "model", model)
    if not hasattr(inner, "get_params"):
        raise InvalidInputError("Cross-validation refits the model, so it needs a scikit-learn "
                                "estimator (this one is not).")
    if strategy == "auto":
        strategy = "stratified" if task == "classification" else "kfold"
    names = ("accuracy", "f1", "roc_auc") if task == "classification" else ("rmse", "mae", "r2")

    def splits(seed: int) -> Any:
        if strategy == "stratified":
            return StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y)
        if strategy == "kfold":
            return KFold(folds, shuffle=True, random_state=seed).split(X, y)
        if strategy == "group":
            if groups is None:
                raise InvalidInputError("Group cross-validation needs a group column.")
            return GroupKFold(folds).split(X, y, groups)
        if strategy == "timeseries":
            return TimeSeriesSplit(folds).split(X, y)
        raise InvalidInputError(f"Unknown split {strategy!r}; use stratified, kfold, group or "
                                "timeseries.")

    try:
        jobs = [(seed, train, test) for seed in range(seeds) for train, test in splits(seed)]
    except ValueError as exc:  # more folds than rows, classes or groups allow
        raise InvalidInputError(f"Cannot cut {folds} {strategy} folds from {len(y):,} rows: "
                                f"{exc} Use a smaller --cv.") from exc
    if strategy in ("group", "timeseries") and seeds > 1:
        jobs = jobs[:len(jobs) // seeds]  # these splits do not depend on a seed

    def fold(job: tuple[int, np.ndarray, np.ndarray]) -> dict[str, float]:
        seed, train, test = job
        est = clone(inner).fit(X.iloc[train], y[train])
        pred = est.predict(X.iloc[test])
        out: dict[str, float] = {"seed": float(seed)}
        for name in names:
            metric = M.get_metric(name)
            if metric.uses == "score":
                if not hasattr(est, "predict_proba") or len(np.unique(y[test])) != 2:
                    continue
                out[name] = metric.fn(y[test], est.predict_proba(X.iloc[test])[:, 1])
            else:
                out[name] = metric.fn(y[test], pred)
        return out

    with ThreadPoolExecutor(max_workers=2) as pool:
        try:
            results = list(pool.map(fold, jobs))
        except ValueError as exc:  # e.g. a training fold with a single class
            raise InvalidInputError(f"A cross-validation fold could not be refit: {exc} "
                                    "Use fewer folds or more data.") from exc
    per_seed: dict[float, int] = {}
    for r in results:
        r["fold"] = float(per_seed.setdefault(r["seed"], 0))
        per_seed[r["seed"]] += 1
    summary: dict[str, dict[str, float]] = {}
    for name in names:
        values = [r[name] for r in results if name in r]
        if values:
            summary[name] = {"mean": float(np.mean(values)), "std": float(np.std(values)),
                             "folds": len(values)}
    return summary, results


@dataclass
class _Phase:
    name: str


@contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[_Phase]:
    """Record the seconds of the ``with`` body in ``timings`` under ``name``, which the body
    may change once it knows it (a check's name is known after it ran). Nothing is
    recorded when the body raises: that evaluation makes no report."""
    phase = _Phase(name)
    start = time.perf_counter()
    yield phase
    timings[phase.name] = time.perf_counter() - start


@dataclass(frozen=True)
class _Measured:
    """What the predictions and metrics phase found, before any check runs."""

    pred: np.ndarray
    score: np.ndarray | None
    preflight: tuple[CheckResult, ...]  # outputs that are not numbers, labels never seen
    metrics: dict[str, dict[str, float]]  # name -> {value, low, high}
    baseline_metrics: dict[str, float] | None


def evaluate(project: Project, model: str, data: Any, target: str, *,
             sensitive_features: list[str] | None = None, baseline: str | None = None,
             suite: str | Path | Suite | None = None, slices: list[str] | None = None,
             cv: int | None = None, seeds: int = 1, cv_strategy: str = "auto",
             cv_groups: str | None = None, resamples: int = 200, seed: int = 0,
             record: bool = True) -> EvaluationReport:
    """Evaluate ``model`` (a models:/ or runs:/ URI) on ``data`` (a dataset ref, a CSV or
    Parquet file, or a DataFrame) with the ``target`` column; see the module docs."""
    return evaluate_request(project, EvaluationRequest.of(
        model, data, target, sensitive_features=sensitive_features, baseline=baseline,
        suite=suite, slices=slices, cv=cv, seeds=seeds, cv_strategy=cv_strategy,
        cv_groups=cv_groups, resamples=resamples, seed=seed, record=record))


def evaluate_request(project: Project, request: EvaluationRequest) -> EvaluationReport:
    """Run ``request`` phase by phase: load the model, read and align the data, predict and
    measure, check, and make (and record) the report; ``timings`` has each phase's seconds."""
    from mloop.registry.models import load_model

    timings: dict[str, float] = {}
    with timed(timings, "load"):
        loaded = load_model(project, request.model, engine="native")
        frame, name = read_data(project, request.data)
    rows = align(request, loaded, frame, name)
    measured = _measure(project, request, loaded, rows, timings)
    suite = request.suite if request.suite is not None else check_suite(
        default_suite(rows.task, list(request.sensitive_features), request.baseline is not None))
    ctx = _context(project, request, loaded, rows, measured=measured, suite=suite)
    results = _checks(ctx, suite, measured.preflight, timings)
    fair = _fairness(ctx, request.sensitive_features)
    cv_summary = _cross_validation(project, request, ctx, timings)
    report = EvaluationReport(
        model=request.model, data=rows.name, target=request.target, task=rows.task,
        rows=len(rows.frame), metrics=measured.metrics, checks=results, suite=suite.name,
        slices=_slices(ctx, request.slice_columns), fairness=fair, baseline=request.baseline,
        baseline_metrics=measured.baseline_metrics, cv=cv_summary, timings=timings,
        created_at=now_ms(), notes=list(rows.notes))
    if request.record:
        record_report(project, report)
    return report


def _measure(project: Project, request: EvaluationRequest, loaded: Any, rows: Rows,
             timings: dict[str, float]) -> _Measured:
    """The model's predictions, their sanity, every metric with its interval, and the
    baseline model's metrics on the same rows."""
    with timed(timings, "predict"):
        pred, score = predictions(loaded, rows.task, rows.X)
    preflight = _preflight(loaded, rows, pred, score)
    with timed(timings, "metrics"):
        # intervals around a regression's metrics mean nothing when a prediction is NaN
        resamples = request.resamples if not preflight or rows.task != "regression" else 0
        metrics = _metrics(loaded, rows, pred, score, resamples=resamples, seed=request.seed)
    baseline_metrics = None
    if request.baseline is not None:
        with timed(timings, "baseline"):
            baseline_metrics = _baseline_metrics(project, request.baseline, request, rows)
    return _Measured(pred, score, tuple(preflight), metrics, baseline_metrics)


def _preflight(loaded: Any, rows: Rows, pred: np.ndarray, score: np.ndarray | None
               ) -> list[CheckResult]:
    """Results for outputs no check can judge: predictions or probabilities that are not
    numbers (failures), and labels the model never saw (a warning)."""
    out: list[CheckResult] = []
    if rows.task == "regression" and not np.all(np.isfinite(pred.astype(float))):
        out.append(CheckResult("predictions are numbers", FAIL, None, "no NaN or inf",
                               f"{int((~np.isfinite(pred.astype(float))).sum())} "
                               "predictions are NaN or infinite."))
    if rows.task == "classification":
        if score is not None and np.isnan(np.asarray(score, dtype=float)).any():
            out.append(CheckResult("probabilities are numbers", FAIL, None, "no NaN",
                                   "Some predicted probabilities are NaN."))
        known = getattr(loaded.model, "classes_", None)
        if known is not None:
            unseen = sorted(set(np.unique(rows.y).tolist()) - set(np.asarray(known).tolist()))
            if unseen:
                out.append(CheckResult(
                    "labels the model knows", WARN, float(len(unseen)), "none unseen",
                    f"y holds labels the model never saw in training: {unseen[:10]}; they can "
                    "never be predicted right.", severity="warn"))
    return out


def _baseline_metrics(project: Project, baseline: str, request: EvaluationRequest,
                      rows: Rows) -> dict[str, float]:
    """The metrics (without intervals) of the ``baseline`` model on the same rows."""
    from mloop.registry.models import load_model

    base = load_model(project, baseline, engine="native")
    X = features(base, rows.frame, request.target, list(request.sensitive_features))[0]
    pred, score = predictions(base, rows.task, X)
    metrics = _metrics(base, rows, pred, score, resamples=0, seed=request.seed)
    return {k: v["value"] for k, v in metrics.items()}


def _context(project: Project, request: EvaluationRequest, loaded: Any, rows: Rows, *,
             measured: _Measured, suite: Suite) -> Context:
    """What the checks look at, built once; the training rows and the ONNX twin are read
    only when a check of ``suite`` needs them."""
    needs_train = any(c.get("data") in ("train_test_overlap", "skew")
                      or c.get("behaviour") == "seed_stability" for c in suite.checks)
    train = _training_rows(project, request.model) if needs_train else None
    cache: dict[str, Any] = {}
    if any(c.get("behaviour") == "engine_consistency" for c in suite.checks) and \
            loaded.manifest.get("onnx"):
        cache["onnx_bytes"] = _onnx_bytes(project, request.model)
    sensitive = list(request.sensitive_features)
    return Context(
        model=loaded, X=rows.X, y=rows.y, task=rows.task, pred=measured.pred,
        score=measured.score, metrics={k: v["value"] for k, v in measured.metrics.items()},
        sensitive=rows.frame[sensitive] if sensitive else None,
        baseline_metrics=measured.baseline_metrics, baseline_uri=request.baseline,
        train=train, target=request.target, seed=request.seed,
        first_model=suite.first_model, frame=rows.frame, cache=cache)


def _checks(ctx: Context, suite: Suite, preflight: tuple[CheckResult, ...],
            timings: dict[str, float]) -> list[CheckResult]:
    """The preflight results, then each check of ``suite`` in order (each timed)."""
    results = list(preflight)
    for entry in suite.checks:
        with timed(timings, "check") as phase:
            result = run_check(ctx, entry)
            phase.name = f"check: {result.name}"
        results.append(result)
    return results


def _fairness(ctx: Context, sensitive: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Group rates and disparities per sensitive column (classification only)."""
    fair: dict[str, dict[str, Any]] = {}
    if ctx.task != "classification":
        return fair
    from mloop.evaluation.fairness import fairness

    for column in sensitive:
        rep = fairness(ctx.y, ctx.pred, ctx.frame[column])
        fair[column] = {"summary": rep.summary(), "groups": rep.by_group(),
                        "undefined": rep.undefined}
    return fair


def _cross_validation(project: Project, request: EvaluationRequest, ctx: Context,
                      timings: dict[str, float]) -> dict[str, dict[str, float]] | None:
    """The cross-validation summary when ``request.cv`` asks for one (folds recorded as
    nested runs inside an active run)."""
    if not request.cv:
        return None
    with timed(timings, "cross_validation"):
        groups = ctx.frame[request.cv_groups].to_numpy() if request.cv_groups else None
        summary, per_fold = cross_validate(
            ctx.model, ctx.X, ctx.y, ctx.task, folds=request.cv, seeds=request.seeds,
            strategy=request.cv_strategy, groups=groups)
        _fold_runs(project, per_fold)
    return summary


def _fold_runs(project: Project, per_fold: list[dict[str, float]]) -> None:
    """Inside an active run, each fold becomes a nested run with its metrics."""
    if lineage.active_run_id() is None:
        return
    from mloop.tracking import fluent

    for r in per_fold:
        seed, number = int(r["seed"]), int(r["fold"])
        with fluent.start_run(name=f"cv seed {seed} fold {number}", nested=True,
                              project=project):
            fluent.log_params({"cv_seed": seed, "cv_fold": number})
            fluent.log_metrics({k: v for k, v in r.items() if k not in ("seed", "fold")})


def record_report(project: Project, report: EvaluationReport) -> None:
    """Store ``report`` with its model (a version, or a runs:/ URI) and the active run."""
    from mloop.registry.models import get_version
    from mloop.repositories import backend
    from mloop.repositories.evaluations import Evaluation

    report.id = new_id()
    model_uri = report.model
    if not model_uri.startswith("runs:/"):  # churn@champion, models:/churn/2, churn
        model_uri = get_version(project, model_uri).uri  # an alias names its version
    else:  # a short run id, or no path: the full URI, so the version's card finds it
        from mloop.registry.models import resolve_source

        source_run, path, _ = resolve_source(project, model_uri)
        model_uri = f"runs:/{source_run}/{path}"
    digest = project.objects.put_bytes(report.to_json().encode())
    run_id = lineage.active_run_id()
    backend(project).evaluations.add(Evaluation(
        report.id, model_uri, run_id, report.data, report.suite, report.passed, digest,
        current_user(), report.created_at))
    if run_id is not None:
        from mloop.tracking import artifacts

        artifacts.log_bytes(project, run_id, report.to_json().encode(),
                            "evaluation/report.json")


def latest_evaluation(project: Project, model_uri: str) -> dict[str, Any] | None:
    """The newest recorded evaluation of a model version (decision, suite, when)."""
    from mloop.repositories import backend

    found = backend(project).evaluations.latest(model_uri)
    return found.summary() if found is not None else None


def recorded_evaluations(project: Project, model_uris: list[str], *,
                         limit: int = 50) -> list[dict[str, Any]]:
    """The recorded evaluations of any of ``model_uris`` (a version's ``models:/`` URI and
    the ``runs:/`` URI it was logged at), newest first, as :func:`latest_evaluation` rows."""
    from mloop.repositories import backend

    return [e.summary() for e in backend(project).evaluations.of_models(model_uris,
                                                                          limit=limit)]


def load_report(project: Project, digest: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(project.objects.get_bytes(digest))
    return data
