"""Model metrics, vectorised, equal to scikit-learn's definitions (tested property by property).

Classification metrics take labels (``y_pred``) or scores (``y_score``: the positive
class's probability for two classes, an ``(n, k)`` probability matrix for more).
With two classes, precision, recall, specificity and F1 are those of the positive class
(the larger label, as scikit-learn's default ``pos_label=1``); with more, their macro
average. Every metric is registered in :data:`METRICS` with its task, its input and its
direction, which is how suites name them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mloop.errors import InvalidInputError

_EPS = np.finfo(np.float64).eps


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[..., float]
    task: str  # classification | regression
    uses: str  # label | score
    greater_is_better: bool = True
    help: str = ""


def _arr(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 0 or len(arr) == 0:
        raise InvalidInputError(f"{name} is empty; metrics need at least one row.")
    return arr


def _encode(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t, p = _arr(y_true, "y_true"), _arr(y_pred, "y_pred")
    if len(t) != len(p):
        raise InvalidInputError(f"y_true has {len(t)} rows but the predictions {len(p)}.")
    classes, codes = np.unique(np.concatenate([t, p]), return_inverse=True)
    return classes, codes[:len(t)], codes[len(t):]


def confusion_matrix(y_true: Any, y_pred: Any) -> np.ndarray:
    """Counts[i, j]: rows of true class i predicted as j (classes sorted)."""
    classes, t, p = _encode(y_true, y_pred)
    k = len(classes)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _per_class(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    cm = confusion_matrix(y_true, y_pred)
    tp = np.diag(cm).astype(float)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    return tp, fp, fn, tn


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


def _average(per_class: np.ndarray, y_true: Any, y_pred: Any) -> float:
    classes = np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)]))
    if len(classes) <= 2:
        return float(per_class[-1])  # the positive (larger) label
    return float(per_class.mean())


def accuracy(y_true: Any, y_pred: Any) -> float:
    _, t, p = _encode(y_true, y_pred)
    return float(np.mean(t == p))


def balanced_accuracy(y_true: Any, y_pred: Any) -> float:
    """Mean recall over the classes present in ``y_true``."""
    cm = confusion_matrix(y_true, y_pred)
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def precision(y_true: Any, y_pred: Any) -> float:
    tp, fp, _, _ = _per_class(y_true, y_pred)
    return _average(_div(tp, tp + fp), y_true, y_pred)


def recall(y_true: Any, y_pred: Any) -> float:
    """Recall, also called sensitivity or true positive rate."""
    tp, _, fn, _ = _per_class(y_true, y_pred)
    return _average(_div(tp, tp + fn), y_true, y_pred)


def specificity(y_true: Any, y_pred: Any) -> float:
    """True negative rate (of the positive class's negatives; macro over classes)."""
    _, fp, _, tn = _per_class(y_true, y_pred)
    return _average(_div(tn, tn + fp), y_true, y_pred)


def f1(y_true: Any, y_pred: Any) -> float:
    tp, fp, fn, _ = _per_class(y_true, y_pred)
    return _average(_div(2 * tp, 2 * tp + fp + fn), y_true, y_pred)


def _binary_scores(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    t, s = _arr(y_true, "y_true"), np.asarray(y_score, dtype=float)
    if s.ndim == 2:
        if s.shape[1] != 2:
            raise InvalidInputError("Binary scores must be one column (or two).")
        s = s[:, 1]
    classes = np.unique(t)
    if len(classes) != 2:
        raise InvalidInputError(f"This metric needs both classes in y_true; it has "
                                f"{len(classes)}: {classes.tolist()}.")
    return (t == classes[1]).astype(np.int8), s


def _auc_binary(pos: np.ndarray, score: np.ndarray) -> float:
    from scipy.stats import rankdata

    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
    ranks = rankdata(score)  # ties share the average rank: they count one half
    return float((ranks[pos == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc(y_true: Any, y_score: Any) -> float:
    """ROC AUC: binary from the positive scores; one-vs-rest macro for more classes."""
    s = np.asarray(y_score, dtype=float)
    t = _arr(y_true, "y_true")
    if s.ndim == 2 and s.shape[1] > 2:
        classes = np.unique(t)
        if len(classes) != s.shape[1]:
            raise InvalidInputError(f"y_true has {len(classes)} classes but the scores have "
                                    f"{s.shape[1]} columns.")
        return float(np.mean([_auc_binary((t == c).astype(np.int8), s[:, i])
                              for i, c in enumerate(classes)]))
    pos, score = _binary_scores(t, s)
    return _auc_binary(pos, score)


def pr_auc(y_true: Any, y_score: Any) -> float:
    """Average precision (scikit-learn's ``average_precision_score``)."""
    pos, score = _binary_scores(y_true, y_score)
    order = np.argsort(-score, kind="mergesort")
    score, pos = score[order], pos[order]
    last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]  # end of each distinct score
    tps = np.cumsum(pos)[last]
    fps = (last + 1) - tps
    prec = tps / (tps + fps)
    rec = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, rec]) * prec))


def log_loss(y_true: Any, y_score: Any) -> float:
    t = _arr(y_true, "y_true")
    s = np.asarray(y_score, dtype=float)
    if s.ndim == 1 or s.shape[1] == 1:
        pos, p1 = _binary_scores(t, s.ravel())
        s = np.column_stack([1 - p1, p1])
        codes = pos.astype(int)
    else:
        classes, codes = np.unique(t, return_inverse=True)
        if len(classes) != s.shape[1]:
            raise InvalidInputError(f"y_true has {len(classes)} classes but the scores have "
                                    f"{s.shape[1]} columns.")
    p = np.clip(s[np.arange(len(codes)), codes], _EPS, 1 - _EPS)
    return float(-np.mean(np.log(p)))


def brier(y_true: Any, y_score: Any) -> float:
    """Mean squared error of the positive class's probability."""
    pos, score = _binary_scores(y_true, y_score)
    return float(np.mean((score - pos) ** 2))


def calibration_error(y_true: Any, y_score: Any, bins: int = 10) -> float:
    """Expected calibration error over ``bins`` equal-width probability bins."""
    pos, score = _binary_scores(y_true, y_score)
    which = np.minimum((score * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    conf = np.bincount(which, weights=score, minlength=bins)
    hits = np.bincount(which, weights=pos, minlength=bins)
    used = count > 0
    return float(np.sum(np.abs(hits[used] - conf[used])) / len(score))


def _reg(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = _arr(y_true, "y_true").astype(float)
    p = _arr(y_pred, "y_pred").astype(float)
    if len(t) != len(p):
        raise InvalidInputError(f"y_true has {len(t)} rows but the predictions {len(p)}.")
    return t, p


def mae(y_true: Any, y_pred: Any) -> float:
    t, p = _reg(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def rmse(y_true: Any, y_pred: Any) -> float:
    t, p = _reg(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mape(y_true: Any, y_pred: Any) -> float:
    """Mean absolute percentage error, as a fraction (scikit-learn's definition)."""
    t, p = _reg(y_true, y_pred)
    return float(np.mean(np.abs(t - p) / np.maximum(np.abs(t), _EPS)))


def median_absolute_error(y_true: Any, y_pred: Any) -> float:
    t, p = _reg(y_true, y_pred)
    return float(np.median(np.abs(t - p)))


def r2(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination (NaN for fewer than two rows, as scikit-learn)."""
    t, p = _reg(y_true, y_pred)
    if len(t) < 2:
        return float("nan")
    ss_res = float(np.sum((t - p) ** 2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1 - ss_res / ss_tot


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", accuracy, "classification", "label"),
    Metric("balanced_accuracy", balanced_accuracy, "classification", "label"),
    Metric("precision", precision, "classification", "label"),
    Metric("recall", recall, "classification", "label", help="sensitivity"),
    Metric("sensitivity", recall, "classification", "label", help="recall"),
    Metric("specificity", specificity, "classification", "label"),
    Metric("f1", f1, "classification", "label"),
    Metric("roc_auc", roc_auc, "classification", "score"),
    Metric("pr_auc", pr_auc, "classification", "score"),
    Metric("log_loss", log_loss, "classification", "score", greater_is_better=False),
    Metric("brier", brier, "classification", "score", greater_is_better=False),
    Metric("calibration_error", calibration_error, "classification", "score",
           greater_is_better=False),
    Metric("mae", mae, "regression", "label", greater_is_better=False),
    Metric("rmse", rmse, "regression", "label", greater_is_better=False),
    Metric("mape", mape, "regression", "label", greater_is_better=False),
    Metric("median_absolute_error", median_absolute_error, "regression", "label",
           greater_is_better=False),
    Metric("r2", r2, "regression", "label"),
)}


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise InvalidInputError(f"Unknown metric {name!r}; known: "
                                f"{', '.join(sorted(METRICS))}.") from None


def bootstrap(metric: Metric | str, y_true: Any, y_out: Any, *, resamples: int = 200,
              level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of a metric (``y_out``: labels or scores as it uses)."""
    m = get_metric(metric) if isinstance(metric, str) else metric
    t, o = np.asarray(y_true), np.asarray(y_out)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, len(t), len(t))
        try:
            values.append(m.fn(t[idx], o[idx]))
        except InvalidInputError:
            continue  # a resample with one class: no AUC there
    if not values:
        return float("nan"), float("nan")
    lo, hi = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


class Weighted:
    """Every metric of one task at once, for any row weights, in a few O(n) passes.

    Labels are encoded and scores sorted once; then :meth:`values` with integer weights
    ``w`` equals the metric functions on the rows repeated ``w`` times. That is what makes
    bootstrap intervals cheap: a resample is a weight vector (how often each row was
    drawn), not a new array to encode and sort, so 200 resamples of 100,000 rows cost
    about a second for all metrics together.

    ``labels``: the model's classes (its ``classes_``, in the order of the score columns).
    Given, they fix the class set, so a binary model's positive class is ``labels[1]``
    even when the rows (a monitoring window, a bootstrap resample) hold one class only;
    without them the classes are those seen in ``y_true`` and ``y_pred``, and a window of
    zeros would score class 0 as the positive one. ``undefined`` is what a per-class
    ratio with nothing to count (precision with no predicted positives) is worth: 0 as
    scikit-learn's ``zero_division=0``, or NaN to leave the metric out.
    """

    def __init__(self, task: str, y_true: Any, y_pred: Any, y_score: Any = None, *,
                 labels: Any = None, undefined: float = 0.0) -> None:
        self.task = task
        self.undefined = undefined
        t, p = _arr(y_true, "y_true"), _arr(y_pred, "y_pred")
        if len(t) != len(p):
            raise InvalidInputError(f"y_true has {len(t)} rows but the predictions {len(p)}.")
        self.n = len(t)
        if task == "regression":
            t, p = t.astype(float), p.astype(float)
            self.y = t
            self.err = t - p
            self.abs = np.abs(self.err)
            self.ape = self.abs / np.maximum(np.abs(t), _EPS)
            self.abs_order = np.argsort(self.abs, kind="mergesort")
            return
        seen = np.concatenate([t, p])
        fixed = None if labels is None else np.asarray(labels)
        if fixed is not None and (seen.dtype.kind in "OUS") != (fixed.dtype.kind in "OUS"):
            fixed = None  # "1" against 1: the caller did not bring them to one type
        self.fixed = fixed is not None and len(np.unique(fixed)) == 2 and \
            bool(np.isin(seen, fixed).all())
        classes, codes = np.unique(seen if fixed is None else np.concatenate([fixed, seen]),
                                   return_inverse=True)
        codes = codes if fixed is None else codes[len(fixed):]
        self.k = len(classes)
        self.t, self.p = codes[:self.n], codes[self.n:]
        self.pair = self.t * self.k + self.p
        self.score_sets: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.rows_loss: np.ndarray | None = None
        self.brier_rows: np.ndarray | None = None
        if y_score is None:
            return
        s = np.asarray(y_score, dtype=float)
        present = classes if self.fixed else np.unique(t)
        if s.ndim == 1 or (s.ndim == 2 and s.shape[1] == 2):
            if len(present) != 2:
                return
            s1 = s if s.ndim == 1 else s[:, 1]
            pos = (t == present[1]).astype(float)
            self.score_sets = [self._sorted(s1, pos)]
            self.rows_loss = -np.log(np.clip(np.where(pos == 1, s1, 1 - s1), _EPS, 1 - _EPS))
            self.brier_rows = (s1 - pos) ** 2
            self.pos, self.s1 = pos, s1
        elif len(present) == s.shape[1]:
            codes_t = np.searchsorted(present, t)
            self.score_sets = [self._sorted(s[:, i], (codes_t == i).astype(float))
                               for i in range(s.shape[1])]
            self.rows_loss = -np.log(np.clip(s[np.arange(self.n), codes_t], _EPS, 1 - _EPS))

    @staticmethod
    def _sorted(score: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        order = np.argsort(-score, kind="mergesort")
        ordered = score[order]
        group = np.r_[0, np.cumsum(ordered[1:] != ordered[:-1])]
        return order, pos[order], group

    def values(self, w: np.ndarray | None = None) -> dict[str, float]:
        w = np.ones(self.n) if w is None else np.asarray(w, dtype=float)
        total = w.sum()
        if self.task == "regression":
            return self._regression(w, total)
        k = self.k
        cm = np.bincount(self.pair, weights=w, minlength=k * k).reshape(k, k)
        tp = np.diag(cm)
        fp, fn = cm.sum(axis=0) - tp, cm.sum(axis=1) - tp
        tn = total - tp - fp - fn
        # classes of this resample: those with weight in y or in the predictions
        used = (cm.sum(axis=0) + cm.sum(axis=1)) > 0

        def avg(per: np.ndarray) -> float:
            if self.fixed:  # the positive class is the model's second class, always
                return float(per[1])
            per = per[used]
            per = per[~np.isnan(per)]
            if not len(per):
                return float("nan")
            return float(per[-1]) if len(per) <= 2 else float(per.mean())

        def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.where(b > 0, _div(a, b), self.undefined)

        support = cm.sum(axis=1)
        out = {"accuracy": float(tp.sum() / total),
               "balanced_accuracy": float(np.mean(tp[support > 0] / support[support > 0])),
               "precision": avg(ratio(tp, tp + fp)), "recall": avg(ratio(tp, tp + fn)),
               "specificity": avg(ratio(tn, tn + fp)),
               "f1": avg(ratio(2 * tp, 2 * tp + fp + fn))}
        if self.rows_loss is not None:
            out["log_loss"] = float(np.sum(w * self.rows_loss) / total)
        if self.score_sets:
            aucs = [self._auc(w, *ss) for ss in self.score_sets]
            out["roc_auc"] = float(np.mean(aucs)) if len(aucs) > 1 else aucs[0]
        if self.brier_rows is not None:
            out["brier"] = float(np.sum(w * self.brier_rows) / total)
            out["pr_auc"] = self._ap(w, *self.score_sets[0])
            which = np.minimum((self.s1 * 10).astype(int), 9)
            conf = np.bincount(which, weights=w * self.s1, minlength=10)
            hits = np.bincount(which, weights=w * self.pos, minlength=10)
            out["calibration_error"] = float(np.sum(np.abs(hits - conf)) / total)
        return out

    @staticmethod
    def _group_sums(w: np.ndarray, order: np.ndarray, pos: np.ndarray, group: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        ws = w[order]
        return (np.bincount(group, weights=ws * pos), np.bincount(group, weights=ws * (1 - pos)))

    def _auc(self, w: np.ndarray, order: np.ndarray, pos: np.ndarray,
             group: np.ndarray) -> float:
        gpos, gneg = self._group_sums(w, order, pos, group)
        n_pos, n_neg = gpos.sum(), gneg.sum()
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        below = n_neg - np.cumsum(gneg)  # negatives with a strictly lower score
        return float(np.sum(gpos * (below + 0.5 * gneg)) / (n_pos * n_neg))

    def _ap(self, w: np.ndarray, order: np.ndarray, pos: np.ndarray, group: np.ndarray) -> float:
        gpos, gneg = self._group_sums(w, order, pos, group)
        if gpos.sum() == 0:
            return float("nan")
        keep = (gpos + gneg) > 0
        tps, fps = np.cumsum(gpos[keep]), np.cumsum(gneg[keep])
        rec = tps / tps[-1]
        return float(np.sum(np.diff(np.r_[0.0, rec]) * tps / (tps + fps)))

    def _regression(self, w: np.ndarray, total: float) -> dict[str, float]:
        mse = float(np.sum(w * self.err ** 2) / total)
        ybar = np.sum(w * self.y) / total
        ss_tot = float(np.sum(w * (self.y - ybar) ** 2))
        ss_res = mse * total
        if total < 2:
            r2_value = float("nan")
        elif ss_tot == 0:
            r2_value = 1.0 if ss_res == 0 else 0.0
        else:
            r2_value = 1 - ss_res / ss_tot
        ws = w[self.abs_order]
        cum = np.cumsum(ws)
        values = self.abs[self.abs_order]
        lo = values[np.searchsorted(cum, (total - 1) // 2, side="right")]
        hi = values[np.searchsorted(cum, total // 2, side="right")]
        return {"mae": float(np.sum(w * self.abs) / total), "rmse": float(np.sqrt(mse)),
                "mape": float(np.sum(w * self.ape) / total),
                "median_absolute_error": float((lo + hi) / 2), "r2": r2_value}

    def intervals(self, resamples: int = 200, level: float = 0.95, seed: int = 0
                  ) -> dict[str, tuple[float, float]]:
        """Percentile bootstrap interval of every metric."""
        rng = np.random.default_rng(seed)
        draws: dict[str, list[float]] = {}
        for _ in range(resamples):
            w = np.bincount(rng.integers(0, self.n, self.n), minlength=self.n)
            for name, value in self.values(w).items():
                if not np.isnan(value):
                    draws.setdefault(name, []).append(value)
        out = {}
        for name, vals in draws.items():
            lo, hi = np.quantile(vals, [(1 - level) / 2, 1 - (1 - level) / 2])
            out[name] = (float(lo), float(hi))
        return out
