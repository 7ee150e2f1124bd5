"""A/B statistics against scipy and textbook values."""

import numpy as np
import pytest
from scipy import stats

from mloop.errors import InvalidInputError
from mloop.evaluation import stats as ab


def test_two_proportion_ztest():
    res = ab.two_proportion_ztest(200, 1000, 250, 1000)
    pooled = 450 / 2000
    z = (0.25 - 0.2) / np.sqrt(pooled * (1 - pooled) * (2 / 1000))
    assert res.statistic == pytest.approx(z)
    assert res.p_value == pytest.approx(2 * stats.norm.sf(z))
    assert res.ci[0] < 0.05 < res.ci[1]
    with pytest.raises(InvalidInputError):
        ab.two_proportion_ztest(5, 0, 1, 10)


def test_welch_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 200), rng.normal(0.3, 2, 150)
    res = ab.welch_ttest(a, b)
    ref = stats.ttest_ind(b, a, equal_var=False)
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.p_value == pytest.approx(ref.pvalue)
    assert res.ci[0] < res.difference < res.ci[1]


def test_bootstrap_difference_and_sample_size():
    rng = np.random.default_rng(1)
    diff, (lo, hi) = ab.bootstrap_difference(rng.normal(0, 1, 500), rng.normal(1, 1, 500),
                                             resamples=500)
    assert lo < diff < hi and lo > 0.7
    # textbook: 10% -> 12% at alpha 0.05, power 0.8 needs ~3,841 per arm
    assert ab.sample_size_proportions(0.10, 0.12) == pytest.approx(3841, abs=5)
