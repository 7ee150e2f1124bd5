"""Shamir secret sharing: any t shares give the secret back, t − 1 say nothing about it,
and a corrupted or foreign share is refused rather than giving a wrong secret."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.errors import InvalidInputError
from mloop.federated import shamir


@given(st.binary(min_size=32, max_size=32), st.integers(2, 8), st.integers(0, 4),
       st.randoms(use_true_random=False))
def test_shamir_any_t_shares_reconstruct(secret, t, extra, rnd):
    xs = rnd.sample(range(1, 200), t + extra)
    shares = shamir.split(secret, t, xs)
    chosen = dict(rnd.sample(sorted(shares.items()), t))
    assert shamir.reconstruct(chosen, t) == secret
    assert shamir.reconstruct(shares, t) == secret


def test_shamir_t_minus_1_shares_are_consistent_with_any_secret():
    secret, t = bytes(range(32)), 4
    shares = shamir.split(secret, t, [1, 2, 3, 4, 5])
    few = {x: shares[x] for x in (1, 3, 5)}
    with pytest.raises(InvalidInputError, match="cannot reconstruct"):
        shamir.reconstruct(few, t)
    # interpolating t − 1 shares (a lower-degree polynomial) does not give the secret back
    with pytest.raises(InvalidInputError, match="do not reconstruct"):
        shamir.reconstruct(few, t - 1)
    # and for every other secret there is a t-th share that makes it: the t − 1 say nothing
    other = b"\xff" * 32
    lam = shamir.lagrange_at_zero([1, 3, 5, 2])
    known = sum(c * int.from_bytes(few[x], "big") for c, x in zip(lam, (1, 3, 5), strict=False))
    target = int.from_bytes(other + hashlib.sha256(other).digest(), "big")  # what is shared
    forged = (target - known) * pow(lam[3], -1, shamir.PRIME) % shamir.PRIME
    assert shamir.reconstruct({**few, 2: forged.to_bytes(66, "big")}, t) == other


def test_shamir_refuses_corrupted_shares_and_bad_arguments():
    shares = shamir.split(b"k" * 32, 3, [1, 2, 3])
    bad = bytearray(shares[2])
    bad[-1] ^= 1
    with pytest.raises(InvalidInputError, match="corrupted"):  # one flipped bit is enough
        shamir.reconstruct({**shares, 2: bytes(bad)}, 3)
    other = shamir.split(b"k" * 32, 3, [1, 2, 3])  # another sharing of the same secret
    with pytest.raises(InvalidInputError, match="corrupted"):
        shamir.reconstruct({**shares, 3: other[3]}, 3)
    with pytest.raises(InvalidInputError, match="outside the field"):
        shamir.reconstruct({**shares, 2: b"\xff" * 66}, 3)
    with pytest.raises(InvalidInputError, match="32 bytes"):
        shamir.split(b"short", 2, [1, 2])
    with pytest.raises(InvalidInputError, match="distinct"):
        shamir.split(b"k" * 32, 2, [1, 1])
    with pytest.raises(InvalidInputError, match="threshold"):
        shamir.split(b"k" * 32, 3, [1, 2])
