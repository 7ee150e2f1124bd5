"""Bandit traffic weights: shares, floors, concentration, exploration order, simulated regret."""

import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.deploy import bandits
from mloop.deploy.bandits import ArmStats
from mloop.errors import InvalidInputError

RATES = [0.05, 0.06, 0.08]


def _binary(pulls: int, successes: int) -> ArmStats:
    return ArmStats(pulls, successes, successes)


def _continuous(values) -> ArmStats:
    x = np.asarray(values, dtype=float)
    return ArmStats(len(x), float(x.sum()), float((x ** 2).sum()))


@st.composite
def binary_arms(draw):
    k = draw(st.integers(1, 6))
    arms = []
    for _ in range(k):
        n = draw(st.integers(0, 10_000))
        arms.append(_binary(n, draw(st.integers(0, n))))
    return arms


@given(arms=binary_arms(), algorithm=st.sampled_from(bandits.ALGORITHMS),
       floor=st.floats(0, 1), seed=st.integers(0, 2 ** 32 - 1))
def test_weights_sum_to_one_and_honour_the_floor(arms, algorithm, floor, seed):
    min_share = floor / len(arms)  # always feasible
    w = bandits.weights(algorithm, arms, binary=True, rng=np.random.default_rng(seed),
                        min_share=min_share)
    assert w.shape == (len(arms),)
    assert w.sum() == pytest.approx(1.0)
    assert np.all(w >= min_share - 1e-12)


def test_apply_min_share():
    w = bandits.apply_min_share([1.0, 0.0, 0.0], 0.1)
    assert w == pytest.approx([0.8, 0.1, 0.1])
    assert bandits.apply_min_share([0.2, 0.8], 0.0) == pytest.approx([0.2, 0.8])
    assert bandits.apply_min_share([1.0, 0.0], 0.5) == pytest.approx([0.5, 0.5])
    with pytest.raises(InvalidInputError, match="1/3"):
        bandits.apply_min_share([1.0, 0.0, 0.0], 0.4)
    with pytest.raises(InvalidInputError):
        bandits.apply_min_share([0.0, 0.0], 0.1)


def test_thompson_concentrates_on_the_best_arm_with_data():
    rng = np.random.default_rng(0)
    few = [_binary(20, 1), _binary(20, 1), _binary(20, 2)]
    many = [_binary(20_000, 1000), _binary(20_000, 1200), _binary(20_000, 1600)]
    w_few = bandits.thompson_weights(few, binary=True, rng=rng)
    w_many = bandits.thompson_weights(many, binary=True, rng=rng)
    assert w_few.max() < 0.8  # little data: still exploring
    assert w_many[2] > 0.999
    # no data at all: every arm equally likely to be best
    w_none = bandits.thompson_weights([_binary(0, 0)] * 4, binary=True, rng=rng)
    assert w_none == pytest.approx([0.25] * 4, abs=0.02)
    floored = bandits.thompson_weights(many, binary=True, rng=rng, min_share=0.05)
    assert floored == pytest.approx([0.05, 0.05, 0.9], abs=1e-3)


def test_thompson_continuous():
    rng = np.random.default_rng(1)
    arms = [_continuous(rng.normal(1.0, 2.0, 5000)), _continuous(rng.normal(1.3, 2.0, 5000)),
            ArmStats(0, 0.0, 0.0), _continuous([4.0])]
    w = bandits.thompson_weights(arms, binary=False, rng=rng)
    assert w.sum() == pytest.approx(1.0)
    assert w[1] > w[0]
    # an arm never played, or played once, keeps a wide prior: it is still explored
    assert w[2] > 0.05
    assert w[3] > 0.05
    # an arm whose first rewards are equal is not taken as certain
    tied = [_continuous([1.0, 1.0, 1.0]), _continuous([0.0, 2.0, 1.0, 1.5])]
    assert bandits.thompson_weights(tied, binary=False, rng=rng).min() > 0.05


def test_thompson_is_deterministic_with_a_seeded_rng():
    arms = [_binary(100, 10), _binary(100, 12)]
    a = bandits.thompson_weights(arms, binary=True, rng=np.random.default_rng(5))
    b = bandits.thompson_weights(arms, binary=True, rng=np.random.default_rng(5))
    assert np.array_equal(a, b)


def test_ucb1_plays_unplayed_arms_first_then_the_highest_index():
    arms = [_binary(10, 9), _binary(0, 0), _binary(0, 0)]
    assert bandits.ucb1_weights(arms) == pytest.approx([0, 0.5, 0.5])
    assert bandits.ucb1_weights(arms, min_share=0.1) == pytest.approx([0.1, 0.45, 0.45])
    played = [_binary(1000, 100), _binary(1000, 150), _binary(10, 1)]
    # the rarely played arm has the widest bonus: UCB1 explores it
    n = 2010
    index = [0.1 + np.sqrt(2 * np.log(n) / 1000), 0.15 + np.sqrt(2 * np.log(n) / 1000),
             0.1 + np.sqrt(2 * np.log(n) / 10)]
    assert bandits.ucb1_weights(played) == pytest.approx(np.eye(3)[int(np.argmax(index))])
    assert bandits.ucb1_weights(played[:2]) == pytest.approx([0, 1])
    assert bandits.ucb1_weights([_binary(10, 5), _binary(10, 5)]) == pytest.approx([0.5, 0.5])


def test_epsilon_greedy():
    arms = [_binary(100, 10), _binary(100, 20), _binary(100, 5)]
    w = bandits.epsilon_greedy_weights(arms, epsilon=0.3)
    assert w == pytest.approx([0.1, 0.8, 0.1])
    assert bandits.epsilon_greedy_weights(arms, epsilon=0.0) == pytest.approx([0, 1, 0])
    unplayed = bandits.epsilon_greedy_weights([_binary(100, 90), _binary(0, 0)], epsilon=0.2)
    assert unplayed == pytest.approx([0.1, 0.9])
    with pytest.raises(InvalidInputError, match="epsilon"):
        bandits.epsilon_greedy_weights(arms, epsilon=1.5)


def test_posterior():
    post = bandits.posterior([_binary(100, 10), _binary(0, 0)], binary=True)
    assert post[0]["pulls"] == 100
    assert post[0]["mean"] == pytest.approx(0.1)
    assert post[0]["posterior_mean"] == pytest.approx(11 / 102)
    assert post[0]["ci_low"] < 0.1 < post[0]["ci_high"]
    assert post[1]["posterior_mean"] == pytest.approx(0.5)
    assert (post[1]["ci_low"], post[1]["ci_high"]) == pytest.approx((0.025, 0.975))
    rng = np.random.default_rng(2)
    cont = bandits.posterior([_continuous(rng.normal(5, 1, 400)), ArmStats(0, 0, 0)],
                             binary=False)
    assert cont[0]["ci_low"] < 5 < cont[0]["ci_high"]
    assert cont[0]["ci_high"] - cont[0]["ci_low"] == pytest.approx(2 * 1.96 / 20, rel=0.15)
    assert cont[1]["ci_high"] - cont[1]["ci_low"] > cont[0]["ci_high"] - cont[0]["ci_low"]


@pytest.mark.parametrize(("call", "match"), [
    (lambda: bandits.weights("softmax", [_binary(1, 1)], binary=True), "thompson, ucb1"),
    (lambda: bandits.weights("ucb1", [], binary=True), "at least one arm"),
    (lambda: bandits.thompson_weights([_binary(5, 6)], binary=True), "between 0 and its pulls"),
    (lambda: ArmStats(-1, 0, 0), "negative"),
    (lambda: bandits.simulate([0.1, 1.2], 100, None), "between 0 and 1"),
    (lambda: bandits.simulate([0.1, 0.2], 100, "softmax"), "thompson, ucb1"),
])
def test_bad_input_is_a_clear_error(call, match):
    with pytest.raises(InvalidInputError, match=match):
        call()


def test_simulate_thompson_beats_the_even_split_and_is_fast():
    start = time.perf_counter()
    thompson = bandits.simulate(RATES, 50_000, "thompson", seed=1)
    elapsed = time.perf_counter() - start
    even = bandits.simulate(RATES, 50_000, None, seed=1)
    assert elapsed < 1.0
    assert sum(thompson.pulls) == sum(even.pulls) == 50_000
    # the even split loses (0.03 + 0.02) / 3 per request: about 833
    assert even.cumulative_regret == pytest.approx(50_000 * 0.05 / 3, rel=0.05)
    assert thompson.cumulative_regret < even.cumulative_regret / 5
    assert thompson.pulls[2] > 0.8 * 50_000
    assert len(thompson.regret_curve) == 100
    assert thompson.regret_curve[-1] == pytest.approx(thompson.cumulative_regret)
    assert np.all(np.diff(thompson.regret_curve) >= 0)


@pytest.mark.parametrize("algorithm", ["ucb1", "epsilon-greedy"])
def test_simulate_other_algorithms_beat_the_even_split(algorithm):
    result = bandits.simulate(RATES, 50_000, algorithm, seed=2)
    even = bandits.simulate(RATES, 50_000, None, seed=2)
    assert result.cumulative_regret < even.cumulative_regret


def test_simulate_is_deterministic_with_a_seed_and_handles_ragged_blocks():
    a = bandits.simulate(RATES, 1234, "thompson", update_every=100, seed=9)
    b = bandits.simulate(RATES, 1234, "thompson", update_every=100, seed=9)
    assert a.pulls == b.pulls
    assert np.array_equal(a.regret_curve, b.regret_curve)
    assert len(a.regret_curve) == 13  # 12 full blocks and one of 34
    c = bandits.simulate(RATES, 1234, "thompson", update_every=100, seed=10)
    assert not np.array_equal(a.regret_curve, c.regret_curve)
    empty = bandits.simulate(RATES, 0, "ucb1")
    assert empty.cumulative_regret == 0
    assert empty.pulls == [0, 0, 0]
    assert len(empty.regret_curve) == 0


def test_simulate_min_share_keeps_every_arm_measured():
    result = bandits.simulate(RATES, 20_000, "thompson", min_share=0.1, seed=3)
    assert min(result.pulls) >= 0.09 * 20_000
