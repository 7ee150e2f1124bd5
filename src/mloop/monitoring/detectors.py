"""Streaming concept-drift detectors: feed one value at a time, learn when the stream changed.

============  ===================================  ==========================================
name          input to ``update(x)``               use it when
============  ===================================  ==========================================
ddm           0/1 error (1 = the model was wrong)  labels arrive soon after the predictions
                                                   and the error rate may jump (abrupt drift)
eddm          0/1 error                            the drift is slow or gradual: it watches
                                                   the distance between errors; it alarms
                                                   falsely more often than DDM
adwin         any real value (error, loss, score)  the mean may move either way and you want
                                                   no threshold to tune; it also tells the
                                                   mean and width of the current window
page_hinkley  any real value                       a metric of known scale may rise (or
                                                   fall): ``threshold`` is in units of ``x``
kswin         any real value (e.g. one feature)    an unlabelled input may change the shape
                                                   of its distribution, not only its mean
============  ===================================  ==========================================

Every detector follows :class:`Detector`: ``update(x)`` returns ``True`` at the value where
drift is detected, after which the detector forgets the old concept (as its paper does) so
that it can detect the next change. DDM and EDDM also raise ``warning_detected`` before a
drift, the moment to start collecting data for a new model.

>>> from mloop.monitoring.detectors import detector
>>> adwin = detector("adwin")
>>> adwin.update_many([0.0] * 1000 + [1.0] * 200)  # checked every 32 values
[1023, 1055]
>>> adwin.width, round(adwin.mean, 2)
(208, 0.96)
"""

from __future__ import annotations

import inspect
import math
import warnings
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from typing import ClassVar

import numpy as np

from mloop.errors import InvalidInputError


class Detector(ABC):
    """The contract of every drift detector: ``update`` one value at a time, read the flags.

    ``drift_detected`` and ``warning_detected`` describe the latest update; ``n_seen`` counts
    every value since construction or :meth:`reset` (it does not restart after a drift).
    """

    name: ClassVar[str]

    def __init__(self) -> None:
        self.drift_detected = False
        self.warning_detected = False
        self.n_seen = 0

    def update(self, x: float) -> bool:
        """Add one value; ``True`` when drift is detected at this value.

        Raises :class:`~mloop.errors.InvalidInputError` for NaN, infinite or non-numeric
        values, and for anything but 0 or 1 in the detectors that take errors.
        """
        try:
            value = float(x)
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"{self.name} takes numbers, got {x!r}; pass a float.") from None
        if not math.isfinite(value):
            raise InvalidInputError(
                f"{self.name} cannot use {value}; drop or impute missing values first.")
        self._check(value)
        self.n_seen += 1
        self.drift_detected = self._update(value)
        return self.drift_detected

    def update_many(self, values: Iterable[float]) -> list[int]:
        """Update with each value in turn; the 0-based indices (in ``values``) of the drifts."""
        return [i for i, x in enumerate(values) if self.update(x)]

    def reset(self) -> None:
        """Forget everything, as if just constructed with the same parameters."""
        self.drift_detected = False
        self.warning_detected = False
        self.n_seen = 0
        self._restart()

    def _check(self, x: float) -> None:
        """Raise :class:`InvalidInputError` if this detector cannot take the finite ``x``."""
        return  # any finite value, unless a subclass says otherwise

    @abstractmethod
    def _update(self, x: float) -> bool:
        """Add a validated value; ``True`` on drift (then restart the statistics)."""

    @abstractmethod
    def _restart(self) -> None:
        """Clear the statistics of the current concept (not ``n_seen``)."""

    def __repr__(self) -> str:
        names = list(inspect.signature(type(self).__init__).parameters)[1:]
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{type(self).__name__}({args})"


class _ErrorDetector(Detector):
    """A detector whose input is a 0/1 error indicator."""

    def _check(self, x: float) -> None:
        if x not in (0.0, 1.0):
            raise InvalidInputError(
                f"{self.name} takes error indicators: 0 (prediction right) or 1 (wrong), "
                f"got {x!r}; use adwin or page_hinkley for real-valued losses.")


class DDM(_ErrorDetector):
    """Drift Detection Method (Gama, Medas, Castillo & Rodrigues 2004, "Learning with Drift
    Detection").

    The errors are Bernoulli trials: after ``i`` values the error rate is ``p`` with standard
    deviation ``s = sqrt(p (1 - p) / i)``. DDM remembers the point where ``p + s`` was lowest
    (``p_min``, ``s_min``) and signals a warning when ``p + s >= p_min + warning_level *
    s_min``, drift when ``p + s >= p_min + drift_level * s_min``, then starts over.

    Unlike the paper, the minimum is only recorded once ``s > 0`` (at least one error seen),
    so that the first mistake of a so-far perfect model is not taken for drift.

    Soon after a (re)start, while ``p_min`` rests on few values, DDM alarms falsely now and
    then: 0.8 times per 5,000 Bernoulli(0.1) errors on average (measured over 50 streams);
    a larger ``min_samples`` makes that rarer (0.3 with 100).

    :param min_samples: values seen before any warning or drift, default 30 (the paper's).
    :param warning_level: warning at this many standard deviations above the best, default 2.
    :param drift_level: drift at this many standard deviations above the best, default 3;
        must exceed ``warning_level``.
    """

    name = "ddm"

    def __init__(self, min_samples: int = 30, warning_level: float = 2.0,
                 drift_level: float = 3.0) -> None:
        _check_int("min_samples", min_samples, 1)
        _check_positive("warning_level", warning_level)
        if not (_is_number(drift_level) and drift_level > warning_level):
            raise InvalidInputError(
                f"drift_level must be greater than warning_level ({warning_level}), "
                f"got {drift_level}.")
        self.min_samples = min_samples
        self.warning_level = warning_level
        self.drift_level = drift_level
        super().__init__()
        self._restart()

    def _restart(self) -> None:
        self._n = 0
        self._errors = 0
        self._p_min = math.inf
        self._s_min = math.inf

    @property
    def error_rate(self) -> float:
        """The error rate since the last drift (0.0 before any value)."""
        return self._errors / self._n if self._n else 0.0

    def _update(self, x: float) -> bool:
        self._n += 1
        self._errors += x == 1.0
        self.warning_detected = False
        if self._n < self.min_samples:
            return False
        p = self._errors / self._n
        s = math.sqrt(p * (1.0 - p) / self._n)
        if s > 0.0 and p + s < self._p_min + self._s_min:
            self._p_min, self._s_min = p, s
        if p + s >= self._p_min + self.drift_level * self._s_min:
            self._restart()
            return True
        self.warning_detected = p + s >= self._p_min + self.warning_level * self._s_min
        return False


class EDDM(_ErrorDetector):
    """Early Drift Detection Method (Baena-García, del Campo-Ávila, Fidalgo, Bifet, Gavaldà &
    Morales-Bueno 2006, "Early Drift Detection Method").

    Tracks the distance (in values) between consecutive errors: its mean ``p'`` and standard
    deviation ``s'``, and the maximum of ``p' + 2 s'``. When errors come closer together the
    ratio ``(p' + 2 s') / max`` falls: a warning below ``warning_level``, drift below
    ``drift_level``, and the detector starts over. The statistics only move when an error
    arrives, so ``warning_detected`` holds its value between errors.

    EDDM alarms falsely more often than DDM, when ``p' + 2 s'`` falls back from a maximum
    reached by chance: about 3 times per 5,000 Bernoulli(0.1) errors (measured over 50
    streams).

    :param min_errors: errors seen before the maximum is recorded and any warning or drift,
        default 30 (the paper's).
    :param warning_level: warning when the ratio falls below this, default 0.95.
    :param drift_level: drift when the ratio falls below this, default 0.90; must be below
        ``warning_level``.
    """

    name = "eddm"

    def __init__(self, min_errors: int = 30, warning_level: float = 0.95,
                 drift_level: float = 0.90) -> None:
        _check_int("min_errors", min_errors, 1)
        if not (_is_number(drift_level) and _is_number(warning_level)
                and 0.0 < drift_level < warning_level < 1.0):
            raise InvalidInputError(
                "EDDM needs 0 < drift_level < warning_level < 1, "
                f"got drift_level={drift_level}, warning_level={warning_level}.")
        self.min_errors = min_errors
        self.warning_level = warning_level
        self.drift_level = drift_level
        super().__init__()
        self._restart()

    def _restart(self) -> None:
        self._n = 0
        self._last_error = 0
        self._errors = 0
        self._mean = 0.0
        self._m2 = 0.0  # sum of squared deviations of the distances (Welford)
        self._max = 0.0

    def _update(self, x: float) -> bool:
        self._n += 1
        if x == 0.0:
            return False
        distance = self._n - self._last_error
        self._last_error = self._n
        self._errors += 1
        delta = distance - self._mean
        self._mean += delta / self._errors
        self._m2 += delta * (distance - self._mean)
        if self._errors < self.min_errors:
            return False
        level = self._mean + 2.0 * math.sqrt(self._m2 / self._errors)
        self._max = max(self._max, level)
        ratio = level / self._max
        if ratio < self.drift_level:
            self.warning_detected = False
            self._restart()
            return True
        self.warning_detected = ratio < self.warning_level
        return False


class ADWIN(Detector):
    """ADaptive WINdowing (Bifet & Gavaldà 2007, "Learning from Time-Changing Data with
    Adaptive Windowing"), the ADWIN2 variant.

    Keeps a window of recent values, compressed into an exponential histogram: at most
    ``max_buckets`` buckets of each size 1, 2, 4, …, each holding the sum and the variance of
    its values, so memory is O(M log W). Every ``clock`` values it checks each split of the
    window into an older part ``W0`` and a newer part ``W1`` (both of at least
    ``min_window`` values) and drops the oldest buckets while

        |mean(W0) - mean(W1)| > sqrt(2/m · σ²_W · ln(2/δ')) + 2/(3m) · ln(2/δ')

    with ``m = 1 / (1/n0 + 1/n1)`` for parts of ``n0`` and ``n1`` values, ``σ²_W`` the
    window's variance and ``δ' = δ / ln(W)`` (only O(log W) splits are checked). Drift is a
    shrink of the window; what remains is the current concept, read through :attr:`mean`,
    :attr:`variance` and :attr:`width`.

    :param delta: confidence δ in (0, 1), default 0.002; smaller means fewer false alarms
        and later detection.
    :param clock: check for a cut every this many values, default 32.
    :param max_buckets: buckets kept per size (the paper's M), default 5.
    :param min_window: fewest values on each side of a cut, default 5.
    """

    name = "adwin"

    def __init__(self, delta: float = 0.002, clock: int = 32, max_buckets: int = 5,
                 min_window: int = 5) -> None:
        _check_open_unit("delta", delta)
        _check_int("clock", clock, 1)
        _check_int("max_buckets", max_buckets, 1)
        _check_int("min_window", min_window, 1)
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window = min_window
        super().__init__()
        self._restart()

    def _restart(self) -> None:
        # _sums[i] / _vars[i]: buckets of 2**i values, oldest first; row 0 holds the newest.
        self._sums: list[list[float]] = []
        self._vars: list[list[float]] = []
        self._width = 0
        self._total = 0.0
        self._var_sum = 0.0  # sum of squared deviations from the window's mean
        self._ticks = 0

    @property
    def width(self) -> int:
        """How many of the latest values the window holds."""
        return self._width

    @property
    def mean(self) -> float:
        """The mean of the window (the paper's estimation); 0.0 when empty."""
        return self._total / self._width if self._width else 0.0

    @property
    def variance(self) -> float:
        """The population variance of the window; 0.0 when empty."""
        return self._var_sum / self._width if self._width else 0.0

    @property
    def n_buckets(self) -> int:
        """Buckets in the exponential histogram: O(max_buckets · log width)."""
        return sum(len(row) for row in self._sums)

    def _update(self, x: float) -> bool:
        self._insert(x)
        self._ticks += 1
        if self._ticks % self.clock or self._width < 2 * self.min_window:
            return False
        drift = False
        while self._cut_found():
            self._drop_oldest()
            drift = True
        return drift

    def _insert(self, x: float) -> None:
        old_mean = self.mean
        self._width += 1
        self._total += x
        # Welford's step; max() guards against overflow with values near the float limit.
        self._var_sum = max(0.0, self._var_sum + (x - old_mean) * (x - self.mean))
        if not self._sums:
            self._sums.append([])
            self._vars.append([])
        self._sums[0].append(x)
        self._vars[0].append(0.0)
        row = 0
        while len(self._sums[row]) > self.max_buckets:
            # Merge the two oldest buckets of this row into one of the next size.
            size = 1 << row
            s1, s2 = self._sums[row].pop(0), self._sums[row].pop(0)
            v1, v2 = self._vars[row].pop(0), self._vars[row].pop(0)
            diff = (s1 - s2) / size
            if row + 1 == len(self._sums):
                self._sums.append([])
                self._vars.append([])
            self._sums[row + 1].append(s1 + s2)
            self._vars[row + 1].append(v1 + v2 + size / 2 * diff * diff)
            row += 1

    def _cut_found(self) -> bool:
        n = self._width
        if n < 2 * self.min_window:
            return False
        dd = math.log(2.0 * math.log(n) / self.delta)
        var = self.variance
        n0, s0 = 0, 0.0
        for row in range(len(self._sums) - 1, -1, -1):
            size = 1 << row
            for s in self._sums[row]:
                n0 += size
                s0 += s
                n1 = n - n0
                if n1 < self.min_window:
                    return False
                if n0 < self.min_window:
                    continue
                m = 1.0 / (1.0 / n0 + 1.0 / n1)
                eps = math.sqrt(2.0 / m * var * dd) + 2.0 / (3.0 * m) * dd
                if abs(s0 / n0 - (self._total - s0) / n1) > eps:
                    return True
        return False

    def _drop_oldest(self) -> None:
        row = len(self._sums) - 1
        size = 1 << row
        s, v = self._sums[row].pop(0), self._vars[row].pop(0)
        while self._sums and not self._sums[-1]:  # rows below may be empty too
            self._sums.pop()
            self._vars.pop()
        rest = self._width - size
        if rest == 0:
            self._width, self._total, self._var_sum = 0, 0.0, 0.0
            return
        self._total -= s
        diff = s / size - self._total / rest
        self._var_sum = max(0.0, self._var_sum - v - size * rest / self._width * diff * diff)
        self._width = rest


class PageHinkley(Detector):
    """The Page-Hinkley test (Page 1954, "Continuous inspection schemes").

    For a rise of the mean, the cumulative sum ``m_T = alpha · m_{T-1} + (x_T - x̄_T - delta)``
    (``x̄_T`` the mean since the last drift) is compared with its smallest value so far:
    drift when ``m_T - min m > threshold``. A fall uses the mirrored sum; ``"both"`` runs the
    two. After a drift every statistic starts over.

    :param min_instances: values seen before any drift, default 30.
    :param delta: the change of the mean tolerated without alarm, default 0.005, in the
        units of ``x``.
    :param threshold: the alarm level λ, default 50.0, in the units of ``x``; lower detects
        sooner and alarms falsely more often.
    :param alpha: fading factor of the cumulative sum, in (0, 1], default 1 - 0.0001.
    :param mode: ``"up"`` (default) detects a rise of the mean, ``"down"`` a fall,
        ``"both"`` either.
    """

    name = "page_hinkley"
    _MODES = ("up", "down", "both")

    def __init__(self, min_instances: int = 30, delta: float = 0.005, threshold: float = 50.0,
                 alpha: float = 1 - 0.0001, mode: str = "up") -> None:
        _check_int("min_instances", min_instances, 1)
        if not (_is_number(delta) and math.isfinite(delta) and delta >= 0.0):
            raise InvalidInputError(f"delta must be a finite number >= 0, got {delta!r}.")
        _check_positive("threshold", threshold)
        if not (_is_number(alpha) and 0.0 < alpha <= 1.0):
            raise InvalidInputError(f"alpha must be in (0, 1], got {alpha!r}.")
        if mode not in self._MODES:
            raise InvalidInputError(
                f"mode must be one of {', '.join(self._MODES)}, got {mode!r}.")
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.mode = mode
        super().__init__()
        self._restart()

    def _restart(self) -> None:
        self._n = 0
        self._mean = 0.0
        self._up = self._up_min = 0.0
        self._down = self._down_min = 0.0

    @property
    def statistic(self) -> float:
        """The current test statistic ``m_T - min m`` (the larger of the two in ``"both"``)."""
        if self.mode == "up":
            return self._up - self._up_min
        if self.mode == "down":
            return self._down - self._down_min
        return max(self._up - self._up_min, self._down - self._down_min)

    def _update(self, x: float) -> bool:
        self._n += 1
        self._mean += (x - self._mean) / self._n
        dev = x - self._mean
        self._up = self.alpha * self._up + (dev - self.delta)
        self._down = self.alpha * self._down + (-dev - self.delta)
        self._up_min = min(self._up_min, self._up)
        self._down_min = min(self._down_min, self._down)
        if self._n < self.min_instances or self.statistic <= self.threshold:
            return False
        self._restart()
        return True


class KSWIN(Detector):
    """Kolmogorov-Smirnov WINdowing (Raab, Heusinger & Schleif 2020, "Reactive Soft Prototype
    Computing for Concept Drift Streams", Neurocomputing).

    Keeps the last ``window_size`` values. Once the window is full, every value compares the
    newest ``stat_size`` values with ``stat_size`` values drawn uniformly without replacement
    from the older part of the window, by the two-sample Kolmogorov-Smirnov test; drift when
    its p-value is below ``alpha``. After a drift only the newest ``stat_size`` values are
    kept. The last test is in :attr:`statistic` and :attr:`p_value`.

    With two samples of the same size the p-value depends only on the statistic, which takes
    one of ``stat_size + 1`` values; so the statistic is computed here and the p-value of each
    statistic is asked of :func:`scipy.stats.ks_2samp` once and remembered (about 20 µs per
    value instead of 400).

    The test runs at every value, so a stationary stream still sees false alarms: about one
    per 700 values of Gaussian noise with the defaults (the tests overlap, so far fewer than
    ``alpha`` per value). With 0/1 data the statistic is coarse and the test weak.

    :param alpha: significance level in (0, 1), default 0.005.
    :param window_size: values kept, default 100; at least ``2 * stat_size`` so that the
        older part can supply the sample.
    :param stat_size: values in each sample of the test, default 30.
    :param seed: seed of the sampling (a :func:`numpy.random.default_rng` seed), default
        None (not reproducible); :meth:`reset` re-seeds.
    """

    name = "kswin"

    def __init__(self, alpha: float = 0.005, window_size: int = 100, stat_size: int = 30,
                 seed: int | None = None) -> None:
        _check_open_unit("alpha", alpha)
        _check_int("stat_size", stat_size, 1)
        _check_int("window_size", window_size, 2 * stat_size, "twice stat_size")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)
                                 or seed < 0):
            raise InvalidInputError(f"seed must be a non-negative int or None, got {seed!r}.")
        self.alpha = alpha
        self.window_size = window_size
        self.stat_size = stat_size
        self.seed = seed
        self._p_values: dict[int, float] = {}  # ECDF gap in counts -> p-value; never stale
        super().__init__()
        self._restart()

    def _restart(self) -> None:
        self._window: deque[float] = deque(maxlen=self.window_size)
        self._rng = np.random.default_rng(self.seed)
        self.p_value = 1.0
        self.statistic = 0.0

    def _update(self, x: float) -> bool:
        self._window.append(x)
        if len(self._window) < self.window_size:
            return False
        r = self.stat_size
        data = np.fromiter(self._window, dtype=float, count=self.window_size)
        recent = np.sort(data[-r:])
        older = np.sort(self._rng.choice(data[:-r], size=r, replace=False))
        pooled = np.concatenate((older, recent))
        gap = np.searchsorted(older, pooled, side="right") - np.searchsorted(
            recent, pooled, side="right")
        h = int(np.abs(gap).max())
        if h not in self._p_values:
            self._p_values[h] = _ks_p_value(older, recent)
        self.statistic, self.p_value = h / r, self._p_values[h]
        if self.p_value >= self.alpha:
            return False
        self._window = deque(data[-r:].tolist(), maxlen=self.window_size)
        return True


def _ks_p_value(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sided p-value of ``ks_2samp(a, b)``, exact where scipy manages it."""
    from scipy.stats import ks_2samp

    with warnings.catch_warnings():
        # For the smallest non-zero statistic scipy's exact method can overshoot 1 and
        # fall back, with a RuntimeWarning, to the asymptotic p-value: either is fine here.
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ks_2samp(a, b).pvalue)


DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls for cls in (ADWIN, DDM, EDDM, KSWIN, PageHinkley)
}


def detector(name: str, **params: object) -> Detector:
    """A new detector by its ``name`` (a key of :data:`DETECTORS`) with ``params``."""
    cls = DETECTORS.get(name)
    if cls is None:
        raise InvalidInputError(
            f"Unknown drift detector {name!r}; known detectors: {', '.join(sorted(DETECTORS))}.")
    accepted = list(inspect.signature(cls.__init__).parameters)[1:]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise InvalidInputError(
            f"{name} takes no parameter {', '.join(unknown)}; it takes: {', '.join(accepted)}.")
    return cls(**params)


def _check_int(name: str, value: object, minimum: int, why: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        because = f" ({why})" if why else ""
        raise InvalidInputError(f"{name} must be an int >= {minimum}{because}, got {value!r}.")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_positive(name: str, value: float) -> None:
    if not (_is_number(value) and math.isfinite(value) and value > 0.0):
        raise InvalidInputError(f"{name} must be a finite number > 0, got {value!r}.")


def _check_open_unit(name: str, value: float) -> None:
    if not (_is_number(value) and 0.0 < value < 1.0):
        raise InvalidInputError(f"{name} must be in (0, 1), got {value!r}.")


__all__ = ["ADWIN", "DDM", "DETECTORS", "EDDM", "KSWIN", "Detector", "PageHinkley", "detector"]
