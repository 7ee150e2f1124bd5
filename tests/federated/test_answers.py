"""What a client may answer: every kind parsed, every mistake named."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.errors import InvalidInputError
from mloop.federated import answers

LIKE = [np.zeros((2, 2)), np.zeros(3)]


def test_metrics_keep_what_a_run_can_log_and_leave_out_the_rest() -> None:
    got = answers.metrics({"val/acc": 0.5, "f1@0.5": 1, "_loss": True, "f1": math.nan,
                           "device": "cuda", "bad\nkey": 1.0, "x" * 300: 2.0,
                           "clipped": 2, " padded": 1})
    assert got == {"val/acc": 0.5, "f1@0.5": 1.0, "_loss": 1.0}
    assert answers.metrics(None) == {}
    with pytest.raises(InvalidInputError, match="JSON object"):
        answers.metrics([1, 2, 3])
    with pytest.raises(InvalidInputError, match="at most 64"):
        answers.metrics(dict.fromkeys(map(str, range(65)), 1))


@given(st.one_of(st.booleans(), st.floats(), st.text(max_size=3), st.none(),
                 st.integers(min_value=-10, max_value=-1),
                 st.integers(min_value=2**53 + 1)))
def test_num_examples_must_be_a_sane_integer(value: object) -> None:
    with pytest.raises(InvalidInputError, match="num_examples"):
        answers.examples(value)


def test_fit_answers() -> None:
    parse = answers.fit_parser(LIKE)
    delta, n, metrics = parse(([np.ones((2, 2)), np.ones(3)], {"num_examples": 7,
                                                              "metrics": {"loss": 0.1}}))
    assert n == 7 and metrics == {"loss": 0.1} and delta[0].shape == (2, 2)
    for bad, says in ((({"a": 1}), "weights"), ((LIKE, {"num_examples": -1}), "num_examples"),
                      (([np.ones(4)], {"num_examples": 1}), "1 arrays"),
                      (([np.ones((2, 2)), np.array([0, np.inf, 0])], {"num_examples": 1}),
                       "NaN or infinite")):
        with pytest.raises(InvalidInputError, match=says):
            parse(bad)


def test_masked_evaluate_initial_and_secagg_answers() -> None:
    masked = answers.masked_parser(5)
    vector, _ = masked(([np.zeros(5, np.uint64)], {}))
    assert vector.dtype == np.uint64
    for bad in (([np.zeros(5)], {}), ([np.zeros(4, np.uint64)], {}), {"x": 1}):
        with pytest.raises(InvalidInputError):
            masked(bad)
    assert answers.evaluate({"loss": 1, "num_examples": 3}) == (1.0, 3, {})
    for bad in ({"loss": "1", "num_examples": 3}, {"loss": math.inf, "num_examples": 3},
                {"loss": True, "num_examples": 3}, [1.0, 3]):
        with pytest.raises(InvalidInputError):
            answers.evaluate(bad)
    assert len(answers.initial((LIKE, {}))) == 2
    with pytest.raises(InvalidInputError, match="no array"):
        answers.initial(([], {}))
    assert answers.secagg({"1": "AAAA"}) == {1: b"\0\0\0"}
    for bad in ({"c_pk": "not base64!"}, {"\u00b2": 1.5}):
        with pytest.raises(InvalidInputError):
            answers.secagg(bad)
