"""Always-valid sequential tests: error rate under peeking, power, invariants, bad input."""

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from mloop.deploy import stats
from mloop.errors import InvalidInputError
from mloop.evaluation import stats as ab

ALPHA = 0.05
EXPERIMENTS, LOOKS, BATCH = 300, 100, 50  # peek after every 50 per arm, up to 5,000


def _upper_fp_bound(alpha: float = ALPHA, experiments: int = EXPERIMENTS) -> float:
    """The share of false positives exceeded with probability 0.1% when the true rate is α."""
    return float(sps.binom.ppf(0.999, experiments, alpha)) / experiments


def _first_decision(decide, ca: np.ndarray, cb: np.ndarray) -> float:
    """Share of experiments decided at any look; stops an experiment at its first decision."""
    decided = 0
    for e in range(ca.shape[0]):
        for look in range(ca.shape[1]):
            if decide(e, look):
                decided += 1
                break
    return decided / ca.shape[0]


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_aa_under_continuous_peeking_keeps_alpha_while_the_z_test_does_not(rate):
    rng = np.random.default_rng(16)
    ca = np.cumsum(rng.binomial(BATCH, rate, (EXPERIMENTS, LOOKS)), axis=1)
    cb = np.cumsum(rng.binomial(BATCH, rate, (EXPERIMENTS, LOOKS)), axis=1)
    n = BATCH * np.arange(1, LOOKS + 1)

    def msprt(e, look):
        res = stats.msprt_proportions(int(ca[e, look]), int(n[look]), int(cb[e, look]),
                                      int(n[look]), alpha=ALPHA)
        return res.decided

    fp_msprt = _first_decision(msprt, ca, cb)
    # the fixed-horizon z-test, vectorised over all experiments and looks, peeked the same way
    pooled = (ca + cb) / (2 * n)
    se = np.sqrt(pooled * (1 - pooled) * 2 / n)
    z = np.divide(cb - ca, n * se, out=np.zeros_like(se), where=se > 0)
    p_fixed = 2 * sps.norm.sf(np.abs(z))
    # the vectorised z is the evaluation module's test, checked at a few looks
    for e, look in [(0, 0), (7, 49), (299, 99)]:
        ref = stats.fixed_horizon(int(ca[e, look]), int(n[look]), int(cb[e, look]), int(n[look]))
        assert ref.p_value == pytest.approx(p_fixed[e, look])
    fp_fixed = float((p_fixed <= ALPHA).any(axis=1).mean())

    assert fp_msprt <= _upper_fp_bound(), f"mSPRT A/A false-positive share {fp_msprt}"
    # peeking 100 times makes the classical test lie: far more than alpha (~35% here)
    assert fp_fixed > 3 * ALPHA, f"fixed-horizon A/A false-positive share {fp_fixed}"
    assert fp_fixed > fp_msprt + 0.15


def test_aa_means_under_continuous_peeking():
    rng = np.random.default_rng(7)
    xa = rng.normal(3.0, 2.0, (EXPERIMENTS, LOOKS, BATCH))
    xb = rng.normal(3.0, 2.0, (EXPERIMENTS, LOOKS, BATCH))
    n = BATCH * np.arange(1, LOOKS + 1)

    def running(x):
        s, sq = np.cumsum(x.sum(axis=2), axis=1), np.cumsum((x ** 2).sum(axis=2), axis=1)
        mean = s / n
        return mean, (sq - n * mean ** 2) / (n - 1)

    (ma, va), (mb, vb) = running(xa), running(xb)

    def msprt(e, look):
        m = int(n[look])
        return stats.msprt_means(ma[e, look], va[e, look], m, mb[e, look], vb[e, look], m).decided

    assert _first_decision(msprt, ma, mb) <= _upper_fp_bound()


def test_real_difference_is_found_with_the_right_winner_and_covered():
    rng = np.random.default_rng(3)
    found = []
    for _ in range(20):
        a, b = rng.random(5000) < 0.10, rng.random(5000) < 0.15
        for n in range(50, 5001, 50):
            res = stats.msprt_proportions(int(a[:n].sum()), n, int(b[:n].sum()), n)
            if res.decided:
                found.append(n)
                assert res.winner == "b"
                assert res.ci_low > 0
                break
    # every run decides, typically after ~1,000 per arm (a fixed-horizon test at 80% power
    # plans 683 per arm and may look only once)
    assert len(found) == 20
    assert float(np.median(found)) < 2000
    # the always-valid interval at the end covers the true effect of 5 points
    res = stats.msprt_proportions(int(a.sum()), 5000, int(b.sum()), 5000)
    assert res.ci_low < 0.05 < res.ci_high


def test_lower_is_better_names_the_arm_with_fewer_errors():
    res = stats.msprt_proportions(150, 1000, 80, 1000, higher_is_better=False)
    assert res.decided
    assert res.effect < 0
    assert res.winner == "b"
    assert stats.msprt_proportions(150, 1000, 80, 1000).winner == "a"


def test_means_power_and_default_tau():
    rng = np.random.default_rng(5)
    a, b = rng.normal(10, 3, 3000), rng.normal(11, 3, 3000)
    res = stats.msprt_means(a.mean(), a.var(ddof=1), 3000, b.mean(), b.var(ddof=1), 3000)
    assert res.decided
    assert res.winner == "b"
    assert res.ci_low < 1 < res.ci_high
    welch = stats.welch_reference(a, b)
    assert welch.p_value < 1e-6
    assert welch.difference == pytest.approx(res.effect)
    # the always-valid interval is wider than the fixed-horizon one: the price of peeking
    assert res.ci_high - res.ci_low > welch.ci[1] - welch.ci[0]


def test_fixed_horizon_delegates_to_the_evaluation_module():
    assert stats.fixed_horizon(100, 1000, 130, 1000) == ab.two_proportion_ztest(100, 1000,
                                                                                 130, 1000)
    with pytest.raises(InvalidInputError):
        stats.fixed_horizon(5, 0, 1, 10)


@pytest.mark.parametrize(("sa", "na", "sb", "nb"), [
    (0, 0, 0, 0), (0, 0, 5, 10), (3, 5, 2, 4),  # no data / too few samples
    (100, 100, 100, 100), (0, 100, 0, 100),     # all successes / all failures: no variance
])
def test_degenerate_proportions_are_undecided(sa, na, sb, nb):
    res = stats.msprt_proportions(sa, na, sb, nb)
    assert not res.decided
    assert res.winner is None
    assert res.p_value == 1.0
    assert (res.ci_low, res.ci_high) == (-math.inf, math.inf)
    assert not math.isnan(res.effect)
    json.dumps(res.to_dict(), allow_nan=False)


@pytest.mark.parametrize("args", [
    (0.0, 0.0, 100, 1.0, 0.0, 100),   # zero variance
    (0.0, 1.0, 0, 1.0, 1.0, 100),     # empty arm
    (0.0, 1.0, 1, 1.0, 1.0, 1),       # one observation each
    (0.0, math.inf, 50, 1.0, 1.0, 50),
])
def test_degenerate_means_are_undecided(args):
    res = stats.msprt_means(*args)
    assert not res.decided
    assert res.p_value == 1.0
    assert not math.isnan(res.effect)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: stats.msprt_proportions(-1, 10, 1, 10), "negative"),
    (lambda: stats.msprt_proportions(1, -10, 1, 10), "negative"),
    (lambda: stats.msprt_proportions(11, 10, 1, 10), "exceed"),
    (lambda: stats.msprt_proportions(1, 10, 1, 10, alpha=0), "alpha"),
    (lambda: stats.msprt_proportions(1, 10, 1, 10, tau=0), "tau"),
    (lambda: stats.msprt_means(0, 1, -1, 0, 1, 10), "negative"),
    (lambda: stats.msprt_means(0, -1, 10, 0, 1, 10), "negative"),
    (lambda: stats.running_p(None, 1.5), r"\[0, 1\]"),
])
def test_bad_input_is_a_clear_error(call, match):
    with pytest.raises(InvalidInputError, match=match):
        call()


def test_to_dict_is_json_ready():
    d = stats.msprt_proportions(100, 1000, 150, 1000).to_dict()
    assert set(d) == {"n_a", "n_b", "effect", "ci_low", "ci_high", "p_value", "decided",
                      "winner", "alpha"}
    assert d["winner"] == "b"
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert stats.msprt_proportions(0, 0, 0, 0).to_dict()["ci_high"] == "Infinity"


counts = st.integers(min_value=0, max_value=100_000)


@st.composite
def two_arms(draw):
    na, nb = draw(counts), draw(counts)
    return (draw(st.integers(0, na)), na, draw(st.integers(0, nb)), nb)


@given(arms=two_arms(), alpha=st.floats(0.001, 0.5),
       tau=st.none() | st.floats(0.001, 1.0))
def test_proportions_invariants(arms, alpha, tau):
    sa, na, sb, nb = arms
    res = stats.msprt_proportions(sa, na, sb, nb, alpha=alpha, tau=tau)
    assert 0 <= res.p_value <= 1
    assert res.ci_low <= res.effect <= res.ci_high
    assert res.decided == (res.p_value <= alpha)
    # decided exactly when the always-valid interval excludes no-effect
    if res.decided:
        assert res.ci_low > 0 or res.ci_high < 0
        assert res.winner == ("b" if res.effect > 0 else "a")
    else:
        assert res.winner is None
    swapped = stats.msprt_proportions(sb, nb, sa, na, alpha=alpha, tau=tau)
    assert swapped.effect == pytest.approx(-res.effect)
    assert swapped.p_value == pytest.approx(res.p_value)
    assert swapped.decided == res.decided
    assert swapped.winner == {"a": "b", "b": "a", None: None}[res.winner]
    assert swapped.ci_low == pytest.approx(-res.ci_high)


finite = st.floats(-1e6, 1e6)
variances = st.floats(0, 1e6)
sizes = st.integers(0, 1_000_000)


@given(ma=finite, va=variances, na=sizes, mb=finite, vb=variances, nb=sizes)
def test_means_invariants(ma, va, na, mb, vb, nb):
    res = stats.msprt_means(ma, va, na, mb, vb, nb)
    assert 0 <= res.p_value <= 1
    assert not math.isnan(res.effect)
    assert res.ci_low <= res.effect <= res.ci_high
    swapped = stats.msprt_means(mb, vb, nb, ma, va, na)
    assert swapped.effect == pytest.approx(-res.effect)
    assert swapped.winner == {"a": "b", "b": "a", None: None}[res.winner]


@given(st.lists(st.floats(0, 1), min_size=1, max_size=50))
def test_running_p_is_monotone(ps):
    previous = None
    for p in ps:
        current = stats.running_p(previous, p)
        assert current <= p
        if previous is not None:
            assert current <= previous
        previous = current
    assert previous == min(ps)
