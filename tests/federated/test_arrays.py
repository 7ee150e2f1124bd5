"""The weights wire format: what is sent is what arrives, and nothing else is accepted."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mloop.errors import InvalidInputError
from mloop.federated import arrays

dtypes = st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.uint8, np.float16])


@given(st.lists(hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)),
                max_size=5), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))
def test_round_trip_keeps_values_shapes_and_dtypes(weights: list[np.ndarray],
                                                   meta: dict[str, int]) -> None:
    back, got = arrays.decode(arrays.encode(weights, meta))
    assert got == meta
    assert [w.dtype for w in back] == [w.dtype for w in weights]
    for a, b in zip(back, weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_float32_option_halves_float64_bytes() -> None:
    w = [np.random.default_rng(0).normal(size=(100, 100))]
    small = arrays.encode(w, float32=True)
    assert len(small) < 0.6 * len(arrays.encode(w))
    assert arrays.decode(small)[0][0].dtype == np.float32


def test_flatten_unflatten() -> None:
    like = [np.zeros((2, 3), np.float32), np.zeros(4)]
    vec = np.arange(10.0)
    back = arrays.unflatten(vec, like)
    assert back[0].dtype == np.float32 and back[0].shape == (2, 3)
    np.testing.assert_array_equal(arrays.flatten(back), vec)
    with pytest.raises(ValueError, match="does not fit"):
        arrays.unflatten(np.arange(11.0), like)


def test_pickles_and_junk_are_refused() -> None:
    buf = io.BytesIO()
    np.savez(buf, w0=np.array([{"x": 1}], dtype=object))
    with pytest.raises(InvalidInputError, match=r"not a weights message|pickle|numeric"):
        arrays.decode(buf.getvalue())
    with pytest.raises(InvalidInputError):
        arrays.decode(b"not a zip at all")
    full = arrays.encode([np.arange(1000.0)])
    with pytest.raises(InvalidInputError):
        arrays.decode(full[: len(full) // 2])  # an upload cut short
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("w5.npy", b"")
    with pytest.raises(InvalidInputError):
        arrays.decode(buf.getvalue())


def test_check_like_names_the_problem() -> None:
    like = [np.zeros((2, 2)), np.zeros(3)]
    arrays.check_like([np.ones((2, 2)), np.ones(3)], like)
    with pytest.raises(InvalidInputError, match="1 arrays"):
        arrays.check_like([np.ones((2, 2))], like)
    with pytest.raises(InvalidInputError, match=r"shape \(3, 2\)"):
        arrays.check_like([np.ones((3, 2)), np.ones(3)], like)
    with pytest.raises(InvalidInputError, match="NaN"):
        arrays.check_like([np.ones((2, 2)), np.array([1.0, np.nan, 0])], like)
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        arrays.check_like([np.ones((2, 2)), np.array([1.0, np.inf, 0])], like)
