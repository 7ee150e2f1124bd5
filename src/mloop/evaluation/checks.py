"""Checks: one function per kind, registered by name, built-ins and plugins alike.

A check takes the evaluation context and its entry from the suite and returns a
:class:`CheckResult`: pass, warn or fail, the measured value, the threshold and a
sentence saying why. A failed check blocks deployment unless its ``severity`` is
``warn``. A suite entry names its kind by its key (``metric: accuracy``,
``fairness: …``, ``robustness: …``, ``data: …``, ``behaviour: …``, ``baseline: …``).
The kinds are registered in :mod:`mloop.evaluation.kinds` (plugins too, with
:func:`register_check` or the ``mloop.checks`` entry point group), each with its
parameter schema (:mod:`mloop.evaluation.checkparams` for these built-ins); an entry
reaches its function validated, with the defaults of the parameters it left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mloop.errors import InvalidInputError
from mloop.evaluation import metrics as M
from mloop.evaluation.kinds import CheckKind, check_kinds, kinds, register_check, validate_entry

PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass
class CheckResult:
    name: str
    status: str  # pass | warn | fail
    value: float | None
    threshold: str
    explanation: str
    severity: str = "block"  # block | warn

    @property
    def blocking(self) -> bool:
        return self.status == FAIL and self.severity == "block"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "value": self.value,
                "threshold": self.threshold, "explanation": self.explanation,
                "severity": self.severity, "blocking": self.blocking}


@dataclass(frozen=True)
class Context:
    """What checks look at: the model, the evaluation rows and what was computed.

    Built once, when everything a check may read is known, and not changed afterwards
    (``cache`` is the one place a check may keep what it computed for later checks)."""

    model: Any  # a LoadedModel
    X: Any  # pandas DataFrame of features
    y: np.ndarray
    task: str  # classification | regression
    pred: np.ndarray
    score: np.ndarray | None  # positive-class probability (binary) or (n, k) matrix
    metrics: dict[str, float]
    sensitive: Any = None  # DataFrame of sensitive columns, or None
    baseline_metrics: dict[str, float] | None = None
    baseline_uri: str | None = None
    train: Any = None  # training rows (DataFrame incl. target) when known
    target: str = ""
    seed: int = 0
    first_model: str = "warn"  # policy when a check needs a baseline and there is none
    frame: Any = None  # every column of the evaluation rows (slices may use any of them)
    cache: dict[str, Any] = field(default_factory=dict)

    def metric_of(self, name: str, y: Any = None, pred: Any = None, score: Any = None) -> float:
        m = M.get_metric(name)
        if m.task != self.task:
            raise InvalidInputError(f"{name} is a {m.task} metric; this model is evaluated "
                                    f"as {self.task}.")
        y = self.y if y is None else y
        out = (self.score if score is None else score) if m.uses == "score" else (
            self.pred if pred is None else pred)
        if out is None:
            raise InvalidInputError(f"{name} needs probabilities; the model has no "
                                    "predict_proba.")
        return m.fn(y, out)

    def predict(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        return predictions(self.model, self.task, X)


def predictions(model: Any, task: str, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(predictions, scores) of a loaded ``model`` on ``X``: for a classifier with
    probabilities the positive class's (binary) or the (n, k) matrix, else None."""
    pred, proba = model.predict_both(X)
    if task != "classification" or proba is None:
        return pred, None
    return pred, (proba[:, 1] if proba.ndim == 2 and proba.shape[1] == 2 else proba)


def run_check(ctx: Context, entry: dict[str, Any]) -> CheckResult:
    """Run one suite entry (validated against its kind's schema first)."""
    entry = validate_entry(entry, source="suite entry")
    kind = next(k for k in kinds().values() if k.name in entry)
    severity = entry.get("severity", "block")
    result = kind.run(ctx, entry)
    result.severity = severity
    if result.status == FAIL and severity == "warn":
        result.status = WARN
    return result


def _bounds(value: float, entry: dict[str, Any], *, lo: str = "min", hi: str = "max"
            ) -> tuple[str, str]:
    """(status, threshold text) of ``value`` against min/max in ``entry``."""
    parts, ok = [], True
    if lo in entry:
        parts.append(f">= {entry[lo]}")
        ok &= value >= float(entry[lo])
    if hi in entry:
        parts.append(f"<= {entry[hi]}")
        ok &= value <= float(entry[hi])
    if np.isnan(value):
        return FAIL, " and ".join(parts) or "defined"
    return (PASS if ok else FAIL), " and ".join(parts) or "-"


# -- metric ---------------------------------------------------------------------------


def _metric_check(ctx: Context, entry: dict[str, Any]) -> CheckResult:
    name = entry["metric"]
    where = entry.get("slice")
    if where:  # {column: value}: the metric on that slice only
        mask = np.ones(len(ctx.y), dtype=bool)
        rows = ctx.frame if ctx.frame is not None else ctx.X
        for col, val in where.items():
            if col not in rows.columns:
                raise InvalidInputError(f"Slice column {col!r} is not in the evaluation data.")
            mask &= (rows[col] == val).to_numpy()
        if not mask.any():
            return CheckResult(f"{name} on {where}", WARN, None, "-",
                               "The slice has no rows in the evaluation data.")
        value = ctx.metric_of(name, ctx.y[mask], ctx.pred[mask],
                              None if ctx.score is None else ctx.score[mask])
        label = f"{name} on {', '.join(f'{k}={v}' for k, v in where.items())}"
    else:
        value = ctx.metric_of(name) if name not in ctx.metrics else ctx.metrics[name]
        label = name
    if "min_change" in entry or "max_change" in entry:
        return _change_check(ctx, entry, name, label, value)
    status, threshold = _bounds(value, entry)
    direction = "at least" if "min" in entry else "at most"
    why = (f"{label} = {value:.4g}" + (f", needs {direction} the threshold" if status == FAIL
                                         else ""))
    return CheckResult(label, status, value, threshold, why)


def _change_check(ctx: Context, entry: dict[str, Any], name: str, label: str,
                  value: float) -> CheckResult:
    if ctx.baseline_metrics is None or name not in ctx.baseline_metrics:
        status = {"pass": PASS, "warn": WARN, "fail": FAIL}[ctx.first_model]
        return CheckResult(f"{label} vs baseline", status, value, "a baseline model",
                           f"No baseline model to compare with (first model); the suite's "
                           f"first_model policy says {ctx.first_model}.")
    base = ctx.baseline_metrics[name]
    change = value - base
    if entry.get("relative"):
        change = change / abs(base) if base else float("inf")
    status, threshold = _bounds(change, entry, lo="min_change", hi="max_change")
    unit = " (relative)" if entry.get("relative") else ""
    return CheckResult(f"{label} vs baseline", status, change, f"change {threshold}{unit}",
                       f"{label} {value:.4g} vs {base:.4g} for {ctx.baseline_uri}: "
                       f"change {change:+.4g}{unit}")


# -- baseline (non-ML) ----------------------------------------------------------------


def _baseline_check(ctx: Context, entry: dict[str, Any]) -> CheckResult:
    """The model must beat a majority-class (or mean) predictor."""
    kind = entry["baseline"]
    name = entry.get("metric_name") or ("accuracy" if ctx.task == "classification" else "mae")
    if ctx.task == "classification":
        if kind != "majority":
            raise InvalidInputError(f"Classification baseline must be 'majority', not {kind!r}.")
        values, counts = np.unique(ctx.y, return_counts=True)
        naive = np.full(len(ctx.y), values[counts.argmax()])
    else:
        if kind not in ("mean", "median"):
            raise InvalidInputError(f"Regression baseline must be mean or median, not {kind!r}.")
        naive = np.full(len(ctx.y), float(getattr(np, kind)(ctx.y)))
    m = M.get_metric(name)
    if m.uses != "label":
        raise InvalidInputError(f"The non-ML baseline compares label metrics, not {name}.")
    ours, theirs = ctx.metric_of(name), m.fn(ctx.y, naive)
    margin = float(entry.get("min_margin", 0.0))
    better = ours - theirs if m.greater_is_better else theirs - ours
    status = PASS if better > margin else FAIL
    return CheckResult(f"beats {kind} baseline ({name})", status, better, f"margin > {margin}",
                       f"{name} {ours:.4g} vs {theirs:.4g} for always predicting the {kind}")


# -- fairness -------------------------------------------------------------------------


def _fairness_check(ctx: Context, entry: dict[str, Any]) -> CheckResult:
    from mloop.evaluation.fairness import FAIRNESS_METRICS, fairness

    name = entry["fairness"]
    if name not in FAIRNESS_METRICS:
        raise InvalidInputError(f"Unknown fairness metric {name!r}; use "
                                f"{', '.join(FAIRNESS_METRICS)}.")
    if ctx.task != "classification":
        raise InvalidInputError("Fairness checks are for classifiers.")
    column = entry.get("sensitive")
    if ctx.sensitive is None or column not in ctx.sensitive.columns:
        raise InvalidInputError(f"Fairness check {name} needs sensitive feature {column!r}; "
                                "pass it with --sensitive / sensitive_features.")
    report = fairness(ctx.y, ctx.pred, ctx.sensitive[column])
    value = getattr(report, name)
    if isinstance(value, bool | np.bool_):
        impact = float(report.disparate_impact)
        return CheckResult(f"{name} ({column})", PASS if value else FAIL, impact,
                           "ratio >= 0.8", f"disparate impact {impact:.3f}")
    status, threshold = _bounds(float(value), entry)
    worst = max(report.by_group().items(), key=lambda kv: kv[1]["selection_rate"])[0]
    note = f"; undefined: {', '.join(report.undefined)}" if report.undefined else ""
    return CheckResult(f"{name} ({column})", status, float(value), threshold,
                       f"{name} = {value:.4g} across {len(report.groups)} groups (highest "
                       f"selection rate: {worst}){note}")


# -- robustness -----------------------------------------------------------------------


def _numeric(X: Any) -> list[str]:
    return [c for c in X.columns if X[c].dtype.kind in "if"]


def _primary(ctx: Context) -> str:
    return "accuracy" if ctx.task == "classification" else "rmse"


def _robustness_check(ctx: Context, entry: dict[str, Any]) -> CheckResult:
    kind = entry["robustness"]
    rng = np.random.default_rng(ctx.seed)
    cols = _numeric(ctx.X)
    metric = entry.get("metric_name", _primary(ctx))
    m = M.get_metric(metric)
    base = ctx.metric_of(metric)
    X = ctx.X.copy()
    if kind == "gaussian_noise":
        scale = float(entry.get("scale", 0.1))
        std = X[cols].std().to_numpy()
        X[cols] = X[cols].to_numpy() + rng.normal(0, 1, (len(X), len(cols))) * std * scale
        what = f"Gaussian noise of {scale} standard deviations on {len(cols)} numeric columns"
    elif kind == "missing_values":
        share = float(entry.get("share", 0.1))
        values = np.array(X[cols], dtype=float)  # a writable copy
        values[rng.random(values.shape) < share] = np.nan
        X[cols] = values
        what = f"{share:.0%} of numeric values missing"
    elif kind == "out_of_range":
        factor = float(entry.get("factor", 10.0))
        X[cols] = X[cols].to_numpy() * factor
        what = f"numeric values multiplied by {factor}"
    else:
        raise InvalidInputError(f"Unknown robustness check {kind!r}; use gaussian_noise, "
                                "missing_values or out_of_range.")
    try:
        pred, score = ctx.predict(X)
    except Exception as exc:  # the model's own error on perturbed input is the finding
        return CheckResult(f"robustness: {kind}", FAIL, None, "predicts",
                           f"With {what} the model fails: {type(exc).__name__}: {exc}")
    if ctx.task == "regression" and not np.all(np.isfinite(pred.astype(float))):
        return CheckResult(f"robustness: {kind}", FAIL, None, "finite predictions",
                           f"With {what} some predictions are not finite.")
    value = ctx.metric_of(metric, pred=pred, score=score)
    drop = (base - value) if m.greater_is_better else (value - base)
    if entry.get("relative"):
        drop = drop / abs(base) if base else float("inf")
    flips = float(np.mean(pred != ctx.pred)) if ctx.task == "classification" else None
    status, threshold = _bounds(drop, entry, hi="max_metric_drop")
    if flips is not None and "max_flip_rate" in entry and flips > float(entry["max_flip_rate"]):
        status = FAIL
        threshold += f", flip rate <= {entry['max_flip_rate']}"
    return CheckResult(f"robustness: {kind}", status, drop, threshold,
                       f"With {what}, {metric} moves from {base:.4g} to {value:.4g}"
                       + (f"; {flips:.1%} of predictions flip" if flips is not None else ""))


def smallest_flipping_noise(ctx: Context, rows: int = 200,
                            scales: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
                            ) -> np.ndarray:
    """Per sampled row: the smallest noise scale (in standard deviations) that flips its
    prediction (``inf`` when none of ``scales`` does)."""
    rng = np.random.default_rng(ctx.seed)
    idx = rng.choice(len(ctx.X), min(rows, len(ctx.X)), replace=False)
    X0 = ctx.X.iloc[idx]
    cols = _numeric(X0)
    std = ctx.X[cols].std().to_numpy()
    direction = rng.normal(0, 1, (len(idx), len(cols)))
    out = np.full(len(idx), np.inf)
    base = np.asarray(ctx.pred)[idx]
    for s in scales:
        X = X0.copy()
        X[cols] = X0[cols].to_numpy() + direction * std * s
        flipped = (np.asarray(ctx.model.predict(X)) != base) & np.isinf(out)
        out[flipped] = s
    return out


def _flip_search_check(ctx: Context, entry: dict[str, Any]) -> CheckResult:
    found = smallest_flipping_noise(ctx, int(entry.get("rows", 200)))
    finite = found[np.isfinite(found)]
    median = float(np.median(found)) if len(found) else float("nan")
    status, threshold = _bounds(median, entry, lo="min_median_scale")
    return CheckResult("robustness: flip_search", status, median, threshold,
                       f"{len(finite)} of {len(found)} sampled rows flip under noise up to 1 "
                       f"standard deviation; median smallest flipping scale {median:.3g}")


def _robustness_dispatch(ctx: Context, entry: dict[str, Any]) -> CheckResult:
    if entry["robustness"] == "flip_search":
        return _flip_search_check(ctx, entry)
    return _robustness_check(ctx, entry)


# -- behaviour ------------------------------------------------------------------------


def _behaviour_check(ctx: Context, entry: dict[str, Any]) -> CheckResult:
    kind = entry["behaviour"]
    if kind == "probabilities_sum_to_one":
        if ctx.score is None:
            return CheckResult(kind, WARN, None, "-", "The model gives no probabilities.")
        proba = np.asarray(ctx.model.predict_proba(ctx.X))
        worst = float(np.max(np.abs(proba.sum(axis=1) - 1)))
        inside = bool(np.all((proba >= 0) & (proba <= 1)))
        ok = worst <= 1e-6 and inside
        return CheckResult(kind, PASS if ok else FAIL, worst, "|sum - 1| <= 1e-6, 0 <= p <= 1",
                           f"largest deviation of a row's probabilities from 1: {worst:.2g}")
    if kind == "determinism":
        again = np.asarray(ctx.model.predict(ctx.X))
        same = bool(np.array_equal(again, ctx.pred))
        return CheckResult(kind, PASS if same else FAIL, float(np.mean(again != ctx.pred)),
                           "identical", "Predicting the same rows twice gives "
                           + ("the same result." if same else "different results."))
    if kind == "output_bounds":
        pred = ctx.pred.astype(float) if ctx.task == "regression" else None
        if pred is None:
            known = set(np.unique(ctx.y).tolist())
            unknown = sorted(set(np.unique(ctx.pred).tolist()) - known)
            return CheckResult(kind, FAIL if unknown else PASS, float(len(unknown)),
                               "labels seen in y", f"Labels never seen in y: {unknown[:5]}"
                               if unknown else "Every predicted label occurs in y.")
        finite = np.isfinite(pred)
        if not finite.any():
            return CheckResult(kind, FAIL, None, "finite", "No prediction is a finite number.")
        lo, hi = float(entry.get("min", -np.inf)), float(entry.get("max", np.inf))
        ok = bool(finite.all() and ((pred >= lo) & (pred <= hi)).all())
        return CheckResult(kind, PASS if ok else FAIL, float(np.nanmax(np.abs(pred))),
                           f"finite, in [{lo}, {hi}]", f"{int((~finite).sum())} non-finite "
                           f"predictions; range {np.nanmin(pred):.4g} to {np.nanmax(pred):.4g}")
    if kind == "invariance":
        column = entry.get("column")
        if column not in ctx.X.columns:
            raise InvalidInputError(f"invariance needs a column of the data, not {column!r}.")
        X = ctx.X.copy()
        X[column] = np.random.default_rng(ctx.seed).permutation(X[column].to_numpy())
        pred, _ = ctx.predict(X)
        flips = float(np.mean(pred != ctx.pred))
        status, threshold = _bounds(flips, {"max": entry.get("max_flip_rate", 0.0)})
        return CheckResult(f"invariance to {column}", status, flips, threshold,
                           f"Shuffling {column} changes {flips:.1%} of predictions.")
    if kind == "monotonic":
        column, direction = entry.get("column"), entry.get("direction", "increasing")
        if column not in _numeric(ctx.X):
            raise InvalidInputError(f"monotonic needs a numeric column, not {column!r}.")
        if ctx.score is None and ctx.task == "classification":
            raise InvalidInputError("monotonic needs probabilities or a regression model.")
        X = ctx.X.copy()
        X[column] = X[column] + float(ctx.X[column].std()) * float(entry.get("step", 0.5))
        pred, score = ctx.predict(X)
        before = np.asarray(ctx.score if ctx.task == "classification"
                            else ctx.pred.astype(float))
        after = np.asarray(score if ctx.task == "classification" else pred.astype(float))
        if before.ndim == 2:
            raise InvalidInputError("monotonic checks binary classifiers or regressors.")
        sign = 1 if direction == "increasing" else -1
        wrong = float(np.mean(sign * (after - before) < -1e-12))
        status, threshold = _bounds(wrong, {"max": entry.get("max_violations", 0.0)})
        return CheckResult(f"monotonic {direction} in {column}", status, wrong, threshold,
                           f"Raising {column} moves {wrong:.1%} of outputs the wrong way.")
    if kind == "engine_consistency":
        return _engine_consistency(ctx)
    if kind == "seed_stability":
        return _seed_stability(ctx, entry)
    raise InvalidInputError(f"Unknown behaviour check {kind!r}; use probabilities_sum_to_one, "
                            "determinism, output_bounds, invariance, monotonic, "
                            "engine_consistency or seed_stability.")


def _seed_stability(ctx: Context, entry: dict[str, Any]) -> CheckResult:
    """Refit the model with other random seeds on its training rows: do predictions hold?"""
    from sklearn.base import clone

    name = "stable across training seeds"
    inner = ctx.model.model
    if ctx.train is None or not hasattr(inner, "get_params"):
        return CheckResult(name, WARN, None, "-", "Needs a scikit-learn model and the training "
                           "data it was fitted on (a dataset read by its run).")
    seeded = [k for k in inner.get_params() if k.endswith("random_state")]
    if not seeded:
        return CheckResult(name, PASS, 1.0, "-", "The model has no random seed to vary.")
    needed = [*ctx.X.columns, ctx.target]
    if any(c not in ctx.train.columns for c in needed):
        return CheckResult(name, WARN, None, "-", "The training data the model's run read "
                           "lacks some of its input columns or the target.")
    features = ctx.train[list(ctx.X.columns)]
    target = ctx.train[ctx.target].to_numpy()
    agreement = []
    for seed in range(1, int(entry.get("seeds", 3)) + 1):
        refit = clone(inner).set_params(**dict.fromkeys(seeded, seed)).fit(features, target)
        pred = np.asarray(refit.predict(ctx.X))
        if ctx.task == "classification":
            agreement.append(float(np.mean(pred == ctx.pred)))
        else:
            scale = float(np.std(ctx.pred.astype(float))) or 1.0
            agreement.append(1 - float(np.mean(np.abs(pred - ctx.pred.astype(float)))) / scale)
    value = min(agreement)
    status, threshold = _bounds(value, {"min": entry.get("min_agreement", 0.95)})
    return CheckResult(name, status, value, threshold,
                       f"Refitted with {len(agreement)} other seeds, the least agreement with "
                       f"the model's predictions is {value:.1%}.")


def _engine_consistency(ctx: Context) -> CheckResult:
    """The same rows through the model as trained and as served (its ONNX twin)."""
    name = "served model agrees with the trained one"
    twin = ctx.model.manifest.get("onnx")
    if not twin or ctx.model.engine != "native":
        return CheckResult(name, PASS, 0.0, "identical", "The model is served as it was "
                           "trained (no second engine to disagree).")
    from mloop.registry.onnx import OnnxModel

    data = ctx.cache.get("onnx_bytes")
    if data is None:
        return CheckResult(name, WARN, None, "-", "The ONNX twin could not be read.")
    served = OnnxModel.from_bytes(data)
    labels = np.asarray(served.predict(ctx.X))
    if ctx.task == "classification":
        differ = float(np.mean(labels.astype(str) != ctx.pred.astype(str)))
        gap = 0.0
        if ctx.score is not None:
            proba = np.asarray(served.predict_proba(ctx.X))
            ours = proba[:, 1] if proba.ndim == 2 and proba.shape[1] == 2 else proba
            gap = float(np.max(np.abs(ours - ctx.score)))
        ok = differ == 0 and gap <= 1e-5
        return CheckResult(name, PASS if ok else FAIL, max(differ, gap),
                           "labels equal, probabilities within 1e-5",
                           f"{differ:.2%} of labels differ; largest probability gap {gap:.2g} "
                           "between scikit-learn and the ONNX twin")
    gap = float(np.max(np.abs(labels.astype(float) - ctx.pred.astype(float))))
    return CheckResult(name, PASS if gap <= 1e-5 else FAIL, gap, "within 1e-5",
                       f"largest prediction gap {gap:.2g} between the model and its ONNX twin")


# -- data -----------------------------------------------------------------------------


def _data_check(ctx: Context, entry: dict[str, Any]) -> CheckResult:
    kind = entry["data"]
    X = ctx.X
    if kind == "nulls":
        shares = X.isna().mean()
        worst = shares.idxmax() if len(shares) else "-"
        value = float(shares.max()) if len(shares) else 0.0
        status, threshold = _bounds(value, {"max": entry.get("max", 0.0)})
        return CheckResult("data: nulls", status, value, threshold,
                           f"Largest null share: {value:.2%} in {worst}.")
    if kind == "duplicates":
        value = float(X.duplicated().mean())
        status, threshold = _bounds(value, {"max": entry.get("max", 0.01)})
        return CheckResult("data: duplicates", status, value, threshold,
                           f"{value:.2%} of rows repeat an earlier row.")
    if kind == "class_balance":
        _, counts = np.unique(ctx.y, return_counts=True)
        value = float(counts.min() / counts.sum())
        status, threshold = _bounds(value, {"min": entry.get("min", 0.05)})
        return CheckResult("data: class balance", status, value, threshold,
                           f"Smallest class share: {value:.2%} over {len(counts)} classes.")
    if kind == "leakage":
        return _leakage(ctx, entry)
    if kind == "train_test_overlap":
        if ctx.train is None:
            return CheckResult("data: train/test overlap", WARN, None, "-",
                               "The training data is not known (no dataset read by the "
                               "model's run); nothing to compare.")
        import pandas as pd

        cols = [c for c in X.columns if c in ctx.train.columns]
        seen = set(pd.util.hash_pandas_object(ctx.train[cols], index=False).to_numpy().tolist())
        rows = pd.util.hash_pandas_object(X[cols], index=False).to_numpy()
        value = float(np.mean([h in seen for h in rows.tolist()]))
        status, threshold = _bounds(value, {"max": entry.get("max", 0.0)})
        return CheckResult("data: train/test overlap", status, value, threshold,
                           f"{value:.2%} of evaluation rows also occur in the training data.")
    if kind == "ranges":
        spec = entry.get("columns") or {}
        if not isinstance(spec, dict) or not spec:
            raise InvalidInputError("data: ranges needs columns: {name: {min: …, max: …}}.")
        rows = ctx.frame if ctx.frame is not None else X
        worst, value = "-", 0.0
        for col, bounds in spec.items():
            if col not in rows.columns:
                raise InvalidInputError(f"data: ranges names column {col!r}, which the "
                                        "evaluation data lacks.")
            v = rows[col].to_numpy(dtype=float)
            bad = np.zeros(len(v), dtype=bool)
            if "min" in bounds:
                bad |= v < float(bounds["min"])
            if "max" in bounds:
                bad |= v > float(bounds["max"])
            share = float(bad.mean()) if len(v) else 0.0
            if share > value or worst == "-":
                worst, value = col, share
        status, threshold = _bounds(value, {"max": entry.get("max", 0.0)})
        return CheckResult("data: ranges", status, value, threshold,
                           f"Largest share of values out of range: {value:.2%} in {worst}.")
    if kind == "skew":
        if ctx.train is None:
            return CheckResult("data: training/serving skew", WARN, None, "-",
                               "The training data is not known (no dataset read by the "
                               "model's run); nothing to compare.")
        from scipy.stats import ks_2samp

        cols = [c for c in _numeric(X) if c in ctx.train.columns]
        stats = {c: float(ks_2samp(ctx.train[c].dropna(), X[c].dropna()).statistic)
                 for c in cols}
        worst = max(stats, key=lambda c: stats[c]) if stats else "-"
        value = stats.get(worst, 0.0)
        status, threshold = _bounds(value, {"max": entry.get("max", 0.1)})
        return CheckResult("data: training/serving skew", status, value, threshold,
                           f"Largest Kolmogorov-Smirnov distance between the training rows "
                           f"and these: {value:.3f} in {worst} ({len(cols)} numeric columns)")
    if kind == "schema":
        sig = ctx.model.signature
        want = sig.names if sig is not None and sig.kind == "table" else []
        missing = [c for c in want if c not in X.columns]
        return CheckResult("data: schema", FAIL if missing else PASS, float(len(missing)),
                           "every signature column present",
                           f"Missing: {', '.join(missing)}" if missing else
                           f"All {len(want)} input columns present.")
    raise InvalidInputError(f"Unknown data check {kind!r}; use nulls, duplicates, ranges, "
                            "class_balance, leakage, train_test_overlap, skew or schema.")


def _leakage(ctx: Context, entry: dict[str, Any]) -> CheckResult:
    """A feature that alone predicts the target almost perfectly."""
    limit = float(entry.get("max", 0.98))
    worst, score = "-", 0.0
    y = ctx.y
    for col in _numeric(ctx.X):
        x = ctx.X[col].to_numpy(dtype=float)
        ok = ~np.isnan(x)
        if ok.sum() < 10 or np.nanstd(x) == 0:
            continue
        if ctx.task == "classification" and len(np.unique(y)) == 2:
            auc = M.roc_auc(y[ok], x[ok])
            value = max(auc, 1 - auc)
        elif ctx.task == "regression":
            value = abs(float(np.corrcoef(x[ok], y[ok].astype(float))[0, 1]))
        else:
            continue
        if value > score:
            worst, score = col, value
    status, threshold = _bounds(score, {"max": limit})
    stat = "AUC" if ctx.task == "classification" else "|r|"
    return CheckResult("data: target leakage", status, score, threshold,
                       f"Strongest single feature: {worst} ({stat} {score:.3f} alone)")


def _register_builtins() -> None:
    from mloop.evaluation import checkparams as P

    for kind in (CheckKind("metric", _metric_check, P.METRIC),
                 CheckKind("baseline", _baseline_check, P.BASELINE),
                 CheckKind("fairness", _fairness_check, P.FAIRNESS),
                 CheckKind("robustness", _robustness_dispatch, P.ROBUSTNESS),
                 CheckKind("behaviour", _behaviour_check, P.BEHAVIOUR),
                 CheckKind("data", _data_check, P.DATA)):
        register_check(kind)


_register_builtins()
__all__ = ["FAIL", "PASS", "WARN", "CheckResult", "Context", "check_kinds", "register_check",
           "run_check"]
