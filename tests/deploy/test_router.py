"""Routing: weighted draws follow the weights, sticky keys stay put, 0% arms never answer."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.deploy.router import Split, key_point, request_key
from mloop.errors import InvalidInputError

weights_st = st.dictionaries(st.sampled_from(list("abcdef")),
                             st.floats(0, 100, allow_nan=False), min_size=1, max_size=6
                             ).filter(lambda w: sum(w.values()) > 1)


@given(weights_st, st.integers(0, 2**32 - 1))
def test_a_draw_follows_the_weights_and_zero_weight_arms_never_answer(weights, seed):
    split = Split.of(weights)
    rng = random.Random(seed)
    n = 4000
    picks = [split.pick(None, rng) for _ in range(n)]
    total = sum(weights.values())
    for arm, weight in weights.items():
        share = picks.count(arm) / n
        if weight == 0:
            assert share == 0
        else:  # within 5 standard deviations of the binomial share
            p = weight / total
            assert abs(share - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-9, (arm, share, p)


@given(weights_st, st.lists(st.text(min_size=1), min_size=1, max_size=50))
def test_a_key_always_lands_in_one_arm_with_positive_weight(weights, keys):
    split = Split.of(weights)
    for key in keys:
        arm = split.pick(key)
        assert weights[arm] > 0
        assert all(split.pick(key, random.Random(i)) == arm for i in range(3))


def test_sticky_keys_split_by_the_weights_and_hash_the_same_in_another_process():
    split = Split.of({"a": 30.0, "b": 70.0})
    keys = [f"customer-{i}" for i in range(20_000)]
    share = sum(split.pick(k) == "a" for k in keys) / len(keys)
    assert abs(share - 0.3) < 0.02
    # a key moves only when the weights move past it: 30 -> 40 keeps every "a" in "a"
    wider = Split.of({"a": 40.0, "b": 60.0})
    assert all(wider.pick(k) == "a" for k in keys[:2000] if split.pick(k) == "a")
    code = "from mloop.deploy.router import key_point; print(repr(key_point('customer-7')))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin"},
                           cwd=Path(__file__).parents[2] / "src")
    assert float(other.stdout) == key_point("customer-7")
    assert 0 <= key_point("") < 1


def test_no_positive_weight_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="positive weight"):
        Split.of({"a": 0.0, "b": 0.0})


@pytest.mark.parametrize(("body", "key"), [
    ({"records": [{"customer_id": 7, "x": 1.0}, {"customer_id": 8}]}, "7"),
    ({"columns": ["x", "customer_id"], "data": [[1.0, "c9"]]}, "c9"),
    ({"dataframe_split": {"columns": ["customer_id"], "data": [[3]]}}, "3"),
    ({"dataframe_records": [{"customer_id": "z"}]}, "z"),
    ({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]},
                 {"name": "customer_id", "shape": [1, 1], "datatype": "INT64",
                  "data": [[42]]}]}, "42"),
    ({"records": [{"x": 1.0}]}, "from-header"),
    ([1, 2], "from-header"),
])
def test_the_key_comes_from_the_first_row_else_the_header(body, key):
    assert request_key(body, "customer_id", {"x-mloop-key": "from-header"}) == key
    assert request_key(body, None, {}) is None
