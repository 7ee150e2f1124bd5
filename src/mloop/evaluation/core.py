"""``evaluate``: run a model on labelled data, measure it, check it, record the decision.

The report is stored with the model version (and the active run, as an artifact), so
``mloop models show`` can say whether a version passed, against which suite and when.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from mloop import lineage
from mloop.core.clock import now_ms
from mloop.core.ids import new_id
from mloop.core.process import current_user
from mloop.errors import InvalidInputError
from mloop.evaluation import metrics as M
from mloop.evaluation.checks import FAIL, WARN, CheckResult, Context, run_check
from mloop.evaluation.report import EvaluationReport
from mloop.evaluation.suite import Suite, check_suite, default_suite, load_suite
from mloop.project import Project

SLICE_METRICS = {"classification": ("accuracy", "recall", "precision"),
                 "regression": ("mae", "rmse")}


def _load_data(project: Project, data: Any) -> tuple[Any, str]:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data, f"a DataFrame of {len(data):,} rows"
    text = str(data)
    path = Path(text)
    if path.suffix.lower() in (".csv", ".parquet", ".pq") and path.is_file():
        from mloop.data.stats import read_frame, table_format

        return read_frame(path, table_format(path.name) or "csv"), text
    if path.exists():
        raise InvalidInputError(f"{text}: evaluation data must be a CSV or Parquet file.")
    from mloop import data as mdata

    version = mdata.get(text, project=project)
    return mdata.load(version.ref, project=project), version.uri


def _task(model: Any, y: np.ndarray) -> str:
    inner = model.model
    if hasattr(inner, "predict_proba") or hasattr(inner, "classes_"):
        return "classification"
    if y.dtype.kind in "OUSb":
        return "classification"
    return "regression"


def model_columns(model: Any) -> list[str] | None:
    """The columns a loaded model takes: its table signature's, else the estimator's
    ``feature_names_in_`` (scikit-learn fitted on a DataFrame); None when unknown."""
    sig = model.signature
    if sig is not None and sig.kind == "table":
        return list(sig.names)
    names = getattr(model.model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def _features(model: Any, df: Any, target: str, sensitive: list[str]) -> tuple[Any, list[str]]:
    """(the model's input columns of ``df``, the other columns left out). A column the
    model takes that ``df`` lacks is an :class:`InvalidInputError`; ids, the target and
    anything else the model does not take are left out, not passed to it."""
    wanted = model_columns(model)
    if wanted is None:
        drop = [target] + [c for c in sensitive if c in df.columns]
        return df.drop(columns=drop), []
    have = [str(c) for c in df.columns]
    missing = [c for c in wanted if c not in set(have)]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more"
                                           if len(missing) > 10 else "")
        raise InvalidInputError(
            f"The evaluation data lacks the model's input column(s) {shown}; the model "
            f"takes {len(wanted)} column(s): {', '.join(wanted[:10])}"
            f"{' …' if len(wanted) > 10 else ''}. Evaluate on data with the columns it was "
            "trained on.")
    frame = df if have == list(df.columns) else df.set_axis(have, axis=1)
    keep = set(wanted)
    return frame[wanted], [c for c in have if c not in keep]


def _left_out_note(left_out: list[str], target: str, known: list[str]) -> list[str]:
    """The note saying which columns were not passed to the model (none for only the
    target and the columns named for fairness, slices or groups)."""
    others = [c for c in left_out if c != target and c not in known]
    if not others:
        return []
    shown = ", ".join(others[:10]) + (f" and {len(others) - 10} more" if len(others) > 10
                                      else "")
    return [f"Columns the model does not take were left out of its input: {shown} (the "
            f"target {target!r} is never an input)."]


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


def _metrics(ctx: Context, resamples: int, seed: int) -> dict[str, dict[str, float]]:
    """Every metric of the task with its bootstrap interval (all metrics share resamples)."""
    # the model's classes fix the positive class, even in a resample that lacks one
    labels = getattr(getattr(ctx.model, "model", None), "classes_", None) \
        if ctx.task == "classification" else None
    weighted = M.Weighted(ctx.task, ctx.y, ctx.pred, ctx.score,
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


def _slices(ctx: Context, columns: list[str], frame: Any) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for column in columns:
        values = frame[column].astype(str).to_numpy()
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


def evaluate(project: Project, model: str, data: Any, target: str, *,
             sensitive_features: list[str] | None = None, baseline: str | None = None,
             suite: str | Path | Suite | None = None, slices: list[str] | None = None,
             cv: int | None = None, seeds: int = 1, cv_strategy: str = "auto",
             cv_groups: str | None = None, resamples: int = 200, seed: int = 0,
             record: bool = True) -> EvaluationReport:
    """Evaluate ``model`` (a models:/ or runs:/ URI) on ``data`` (a dataset ref, a CSV or
    Parquet file, or a DataFrame) with the ``target`` column; see the module docs."""
    from mloop.registry.models import load_model

    timings: dict[str, float] = {}
    start = time.perf_counter()
    # A suite with a mistake fails before the model and data are loaded.
    given = check_suite(suite) if isinstance(suite, Suite) else (
        load_suite(suite) if suite is not None else None)
    loaded = load_model(project, model, engine="native")
    frame, data_name = _load_data(project, data)
    timings["load"] = time.perf_counter() - start
    if target not in frame.columns:
        raise InvalidInputError(f"The evaluation data has no target column {target!r}; its "
                                f"columns: {', '.join(map(str, list(frame.columns)[:20]))}.")
    sensitive = list(sensitive_features or [])
    missing = [c for c in sensitive + list(slices or []) + ([cv_groups] if cv_groups else [])
               if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"The evaluation data has no column(s) {', '.join(missing)}.")
    y = frame[target].to_numpy()
    X, left_out = _features(loaded, frame, target, sensitive)
    notes = _left_out_note(left_out, target, sensitive + list(slices or [])
                           + ([cv_groups] if cv_groups else []))
    task = _task(loaded, y)
    t = time.perf_counter()
    ctx = Context(loaded, X, y, task, np.empty(0), None, {}, target=target, seed=seed,
                  frame=frame)
    pred, score = ctx.predict(X)
    ctx.pred, ctx.score = pred, score
    timings["predict"] = time.perf_counter() - t
    preflight: list[CheckResult] = []
    if task == "regression" and not np.all(np.isfinite(pred.astype(float))):
        preflight.append(CheckResult("predictions are numbers", FAIL, None, "no NaN or inf",
                                     f"{int((~np.isfinite(pred.astype(float))).sum())} "
                                     "predictions are NaN or infinite."))
    if task == "classification":
        if score is not None and np.isnan(np.asarray(score, dtype=float)).any():
            preflight.append(CheckResult("probabilities are numbers", FAIL, None, "no NaN",
                                         "Some predicted probabilities are NaN."))
        known = getattr(loaded.model, "classes_", None)
        if known is not None:
            unseen = sorted(set(np.unique(y).tolist()) - set(np.asarray(known).tolist()))
            if unseen:
                preflight.append(CheckResult(
                    "labels the model knows", WARN, float(len(unseen)), "none unseen",
                    f"y holds labels the model never saw in training: {unseen[:10]}; they can "
                    "never be predicted right.", severity="warn"))
    t = time.perf_counter()
    metrics = _metrics(ctx, resamples if not preflight or task != "regression" else 0, seed)
    ctx.metrics = {k: v["value"] for k, v in metrics.items()}
    timings["metrics"] = time.perf_counter() - t
    if baseline is not None:
        t = time.perf_counter()
        base = load_model(project, baseline, engine="native")
        bctx = Context(base, _features(base, frame, target, sensitive)[0], y, task,
                       np.empty(0), None, {})
        bctx.pred, bctx.score = bctx.predict(bctx.X)
        ctx.baseline_metrics = {k: v["value"] for k, v in _metrics(bctx, 0, seed).items()}
        ctx.baseline_uri = baseline
        timings["baseline"] = time.perf_counter() - t
    ctx.sensitive = frame[sensitive] if sensitive else None
    chosen = given if given is not None else check_suite(
        default_suite(task, sensitive, baseline is not None))
    ctx.first_model = chosen.first_model
    if any(c.get("data") in ("train_test_overlap", "skew")
           or c.get("behaviour") == "seed_stability" for c in chosen.checks):
        ctx.train = _training_rows(project, model)
    if any(c.get("behaviour") == "engine_consistency" for c in chosen.checks) and \
            loaded.manifest.get("onnx"):
        ctx.cache["onnx_bytes"] = _onnx_bytes(project, model)
    results = list(preflight)
    for entry in chosen.checks:
        t = time.perf_counter()
        results.append(run_check(ctx, entry))
        timings[f"check: {results[-1].name}"] = time.perf_counter() - t
    fair: dict[str, dict[str, Any]] = {}
    if task == "classification":
        from mloop.evaluation.fairness import fairness

        for column in sensitive:
            rep = fairness(y, pred, frame[column])
            fair[column] = {"summary": rep.summary(), "groups": rep.by_group(),
                            "undefined": rep.undefined}
    cv_summary = None
    if cv:
        t = time.perf_counter()
        cv_summary, per_fold = cross_validate(
            loaded, X, y, task, folds=cv, seeds=seeds, strategy=cv_strategy,
            groups=frame[cv_groups].to_numpy() if cv_groups else None)
        _fold_runs(project, per_fold)
        timings["cross_validation"] = time.perf_counter() - t
    report = EvaluationReport(
        model=model, data=data_name, target=target, task=task, rows=len(frame),
        metrics=metrics, checks=results, suite=chosen.name,
        slices=_slices(ctx, sensitive + [s for s in slices or [] if s not in sensitive], frame),
        fairness=fair, baseline=baseline, baseline_metrics=ctx.baseline_metrics,
        cv=cv_summary, timings=timings, created_at=now_ms(), notes=notes)
    if record:
        record_report(project, report)
    return report


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
    from mloop.store.schema import evaluations

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
    with project.store.write() as conn:
        conn.execute(evaluations.insert().values(
            id=report.id, model_uri=model_uri, run_id=run_id, data=report.data,
            suite=report.suite, passed=report.passed, report=digest, user=current_user(),
            created_at=report.created_at))
    if run_id is not None:
        from mloop.tracking import artifacts

        artifacts.log_bytes(project, run_id, report.to_json().encode(),
                            "evaluation/report.json")


def latest_evaluation(project: Project, model_uri: str) -> dict[str, Any] | None:
    """The newest recorded evaluation of a model version (decision, suite, when)."""
    from sqlalchemy import select

    from mloop.store.schema import evaluations

    with project.store.read() as conn:
        row = conn.execute(select(evaluations).where(evaluations.c.model_uri == model_uri)
                           .order_by(evaluations.c.created_at.desc()).limit(1)).first()
    if row is None:
        return None
    return {"id": row.id, "passed": bool(row.passed), "suite": row.suite, "data": row.data,
            "user": row.user, "created_at": row.created_at, "report": row.report}


def recorded_evaluations(project: Project, model_uris: list[str], *,
                         limit: int = 50) -> list[dict[str, Any]]:
    """The recorded evaluations of any of ``model_uris`` (a version's ``models:/`` URI and
    the ``runs:/`` URI it was logged at), newest first, as :func:`latest_evaluation` rows."""
    from sqlalchemy import select

    from mloop.store.schema import evaluations

    with project.store.read() as conn:
        rows = conn.execute(select(evaluations).where(evaluations.c.model_uri.in_(model_uris))
                            .order_by(evaluations.c.created_at.desc()).limit(limit)).all()
    return [{"id": r.id, "passed": bool(r.passed), "suite": r.suite, "data": r.data,
             "user": r.user, "created_at": r.created_at, "report": r.report} for r in rows]


def load_report(project: Project, digest: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(project.objects.get_bytes(digest))
    return data
