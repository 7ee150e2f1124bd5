"""Shamir's t-of-n secret sharing of 32-byte secrets over the prime field GF(2^521 − 1).

A secret ``s`` becomes the constant term of a random polynomial ``f`` of degree t − 1;
share ``x`` is ``f(x)`` (Shamir, "How to share a secret", CACM 1979). Any ``t`` shares
give ``s`` back by Lagrange interpolation at 0; ``t − 1`` shares are uniformly
distributed whatever ``s`` is, so they say nothing about it. SecAgg uses the client
indexes 1 … n as the x coordinates.

The field is 2^521 − 1 (a Mersenne prime), room for the secret followed by its SHA-256
digest: a reconstruction from shares that do not lie on one polynomial (a corrupted or
misrouted share, even a single flipped bit) gives a value whose digest does not match,
and is refused.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence

from mloop.errors import InvalidInputError

#: The field's modulus: the Mersenne prime 2^521 − 1.
PRIME = (1 << 521) - 1
#: A share's value on the wire: big-endian, fixed width.
SHARE_BYTES = 66
#: The secrets shared: 32 bytes (an X25519 private key, a PRG seed).
SECRET_BYTES = 32


def split(secret: bytes, threshold: int, xs: Sequence[int]) -> dict[int, bytes]:
    """Shares of the 32-byte ``secret`` at each x in ``xs`` (distinct, 1 ≤ x < 2^32), any
    ``threshold`` of which reconstruct it; ``2 ≤ threshold ≤ len(xs)``."""
    if len(secret) != SECRET_BYTES:
        raise InvalidInputError(f"a shared secret has {SECRET_BYTES} bytes, not {len(secret)}")
    _check_xs(xs)
    if not 2 <= threshold <= len(xs):
        raise InvalidInputError(f"a threshold of {threshold} cannot split among {len(xs)} "
                                "holders: it must be between 2 and the number of holders")
    coefficients = [int.from_bytes(secret + hashlib.sha256(secret).digest(), "big")]
    coefficients += [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    shares: dict[int, bytes] = {}
    for x in xs:
        y = 0
        for c in reversed(coefficients):  # Horner
            y = (y * x + c) % PRIME
        shares[x] = y.to_bytes(SHARE_BYTES, "big")
    return shares


def lagrange_at_zero(xs: Sequence[int]) -> list[int]:
    """The coefficients λ_i with f(0) = Σ λ_i·f(x_i) for every polynomial of degree
    < len(xs): computed once per set of holders, then used for every secret they hold."""
    _check_xs(xs)
    out: list[int] = []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if j != i:
                num = num * xj % PRIME
                den = den * (xj - xi) % PRIME
        out.append(num * pow(den, -1, PRIME) % PRIME)
    return out


def combine(coefficients: Sequence[int], shares: Sequence[bytes]) -> bytes:
    """The secret from shares ordered like the x coordinates ``coefficients`` came from
    (:func:`lagrange_at_zero`); :class:`InvalidInputError` when the shares are not of one
    secret (a corrupted or misrouted share)."""
    if len(shares) != len(coefficients):
        raise InvalidInputError(f"{len(shares)} shares for {len(coefficients)} holders")
    total = sum(c * _value(s) for c, s in zip(coefficients, shares, strict=True)) % PRIME
    value = total.to_bytes(SHARE_BYTES, "big")
    head, secret, digest = value[:-64], value[-64:-32], value[-32:]
    if any(head) or hashlib.sha256(secret).digest() != digest:
        raise InvalidInputError("the shares do not reconstruct a secret: at least one of them "
                                "was corrupted or sent for another client or round")
    return secret


def reconstruct(shares: Mapping[int, bytes], threshold: int) -> bytes:
    """The secret from at least ``threshold`` shares {x: share} (the lowest x are used)."""
    if len(shares) < threshold:
        raise InvalidInputError(f"{len(shares)} shares cannot reconstruct a secret split with "
                                f"a threshold of {threshold}")
    xs = sorted(shares)[:threshold]
    return combine(lagrange_at_zero(xs), [shares[x] for x in xs])


def _value(share: bytes) -> int:
    if not isinstance(share, bytes) or len(share) != SHARE_BYTES:
        got = len(share) if isinstance(share, bytes) else type(share).__name__
        raise InvalidInputError(f"a share has {SHARE_BYTES} bytes; got {got}")
    y = int.from_bytes(share, "big")
    if y >= PRIME:
        raise InvalidInputError("a share lies outside the field: it was corrupted")
    return y


def _check_xs(xs: Sequence[int]) -> None:
    if len(set(xs)) != len(xs):
        raise InvalidInputError("the holders' x coordinates must be distinct")
    for x in xs:
        if isinstance(x, bool) or not isinstance(x, int) or not 1 <= x < 1 << 32:
            raise InvalidInputError(f"a holder's x coordinate must be an int in [1, 2^32), not "
                                    f"{x!r}")


__all__ = ["PRIME", "SECRET_BYTES", "SHARE_BYTES", "combine", "lagrange_at_zero",
           "reconstruct", "split"]
