"""Secure aggregation: the server learns the sum of the clients' vectors and nothing else.

After Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine
Learning" (CCS 2017), its honest-but-curious variant: the server follows the protocol
but may look at everything it is sent; there are no signatures and no consistency-check
round, so a server that *lies* (tells clients different survivor lists, forges public
keys) is outside the model. Clients still refuse the one request that would reveal an
input outright: both the self-mask share and the key share of the same peer.

Each client ``u`` (index 1 … n) adds to its fixed-point encoded vector ``x_u`` a
self-mask ``PRG(b_u)`` and, for every peer ``v``, ``±PRG(s_uv)`` (+ when v > u, − when
v < u) where ``s_uv`` comes from an X25519 agreement between their ``s`` keys; the
pairwise masks cancel in the sum. ``b_u`` and ``s_u``'s private key are t-of-n Shamir
shared among the clients (:mod:`mloop.federated.shamir`), each share encrypted with
AES-GCM under a key from their ``c`` keys, so the server can route but not read them.
After the masked vectors arrive, survivors give the server the ``b`` shares of the
survivors and the ``s``-key shares of those who dropped out after sharing: it removes
the self-masks and the dropped clients' pairwise masks, and only the sum remains.
Arithmetic is exact in Z_{2^64} (numpy's uint64 wrap-around).

Message flow (every message is a dict of ints and bytes; :func:`to_json` /
:func:`from_json` carry them as JSON, the masked vector travels as a uint64 array)::

    1. client.advertise()                 → server.add_keys(u, ·)        {"c_pk", "s_pk"}
       server.public_keys()               → every client that advertised (U1, ≥ t)
    2. client.share_keys(public_keys)     → server.add_shares(u, ·)      {v: ciphertext}
       server.ciphertexts_for(u)          → client u, for each u that shared (U2, ≥ t)
    3. client.mask(encode(x), cts)        → server.add_masked(u, ·)      uint64[vector_len]
       server.unmask_request()            → every client that masked (U3, ≥ t)
    4. client.unmask(**request)           → server.finish({u: ·})        {"b": …, "sk": …}
       (≥ t answers) → the uint64 sum of U3's vectors; decode() it.

A client or server object serves one round: fresh keys and masks each round.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import threading
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mloop.errors import ConfigError, InvalidInputError, ServiceUnavailableError
from mloop.federated import shamir

#: Fractional bits of the fixed-point encoding: a resolution of 2^-24 ≈ 6e-8.
DEFAULT_SCALE_BITS = 24
KEY_BYTES = 32
_NONCE = 12
#: One client's encrypted shares for one peer: nonce, two shares, GCM tag.
CIPHERTEXT_BYTES = _NONCE + 2 * shamir.SHARE_BYTES + 16
_KEY_NAMES = frozenset({"c_pk", "s_pk"})


# -- fixed point --------------------------------------------------------------------
def encode(vector: np.ndarray, scale_bits: int = DEFAULT_SCALE_BITS, *,
           summands: int = 1) -> np.ndarray:
    """``round(x·2^f)`` in two's complement as uint64, for a sum of up to ``summands``
    vectors: each |x| must stay below 2^(62−f)/summands (clip updates first), which keeps
    the sum's |value| under 2^(62−f), inside :func:`decode`'s range."""
    f = _scale_bits(scale_bits)
    if isinstance(summands, bool) or not isinstance(summands, int) or summands < 1:
        raise ConfigError(f"summands must be an int >= 1, not {summands!r}")
    x = np.asarray(vector)
    if x.ndim != 1 or x.dtype.kind not in "fiu":
        raise InvalidInputError(f"secure aggregation encodes a 1-D numeric vector, not "
                                f"{x.ndim}-D {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        raise InvalidInputError("the vector to aggregate holds NaN or infinite values")
    limit = 2.0 ** (62 - f) / summands
    if x.size and float(np.max(np.abs(x))) >= limit:
        raise InvalidInputError(
            f"a value of {float(np.max(np.abs(x))):.6g} is too large for a secure sum of "
            f"{summands} vectors with {f} fractional bits (|x| must stay below {limit:.6g}): "
            "clip the updates or lower scale_bits")
    return np.rint(np.ldexp(x, f)).astype(np.int64).view(np.uint64)


def decode(summed: np.ndarray, scale_bits: int = DEFAULT_SCALE_BITS) -> np.ndarray:
    """The float64 values of a uint64 sum of :func:`encode` d vectors: exact for true sums
    with |value| < 2^(63−f), each value off by at most summands·2^-(f+1) from the float
    sum (rounding)."""
    f = _scale_bits(scale_bits)
    arr = np.asarray(summed)
    if arr.ndim != 1 or arr.dtype != np.uint64:
        raise InvalidInputError(f"decode takes a 1-D uint64 vector, not {arr.ndim}-D {arr.dtype}")
    return np.ldexp(arr.view(np.int64).astype(np.float64), -f)


def _scale_bits(scale_bits: int) -> int:
    if isinstance(scale_bits, bool) or not isinstance(scale_bits, int) \
            or not 0 <= scale_bits <= 60:
        raise ConfigError(f"scale_bits must be an int in [0, 60], not {scale_bits!r}")
    return scale_bits


# -- primitives ---------------------------------------------------------------------
def prg(seed: bytes, length: int) -> np.ndarray:
    """``length`` pseudo-random uint64 words: the AES-256-CTR keystream under the 32-byte
    ``seed`` (zero counter block; a seed expands one stream only)."""
    if len(seed) != KEY_BYTES:
        raise InvalidInputError(f"a PRG seed has {KEY_BYTES} bytes, not {len(seed)}")
    encryptor = Cipher(algorithms.AES(seed), modes.CTR(bytes(16))).encryptor()
    return np.frombuffer(encryptor.update(bytes(8 * length)), dtype="<u8").astype(
        np.uint64, copy=False)


def default_threshold(n: int) -> int:
    """The default t for n clients: max(2, ⌈2n/3⌉), a majority that tolerates a third of
    the clients dropping out."""
    return max(2, math.ceil(2 * n / 3))


def check_threshold(threshold: int, n: int) -> int:
    """``threshold`` if 2 ≤ t ≤ n and t > n/2, else :class:`ConfigError`. A majority is
    needed: with t ≤ n/2 a server could ask one half for b shares and the other half for
    key shares of the same client and unmask its input."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ConfigError(f"secure aggregation needs at least 2 clients, not {n!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, int) \
            or not (2 <= threshold <= n and 2 * threshold > n):
        raise ConfigError(f"the SecAgg threshold must be an int with n/2 < t <= n (n = {n}), "
                          f"not {threshold!r}; the default is {default_threshold(n)}")
    return threshold


def _agree(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:
        raise InvalidInputError("a peer's public key is not a usable X25519 key") from None


def _kdf(shared: bytes, purpose: str, round_id: str, u: int, v: int) -> bytes:
    info = json.dumps(["mloop-secagg", purpose, round_id, min(u, v), max(u, v)]).encode()
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(shared)


def _mask_seed(private: X25519PrivateKey, peer_public: bytes, round_id: str,
               u: int, v: int) -> bytes:
    return _kdf(_agree(private, peer_public), "mask", round_id, u, v)


def _associated(round_id: str, sender: int, receiver: int) -> bytes:
    return json.dumps(["mloop-secagg/shares", round_id, sender, receiver]).encode()


def _round(round_id: str | int) -> str:
    text = str(round_id)
    if isinstance(round_id, bool) or not isinstance(round_id, (str, int)) \
            or not 0 < len(text) <= 200:
        raise ConfigError(f"round_id must be a non-empty str or int, not {round_id!r}")
    return text


def _index(index: Any, what: str = "client index") -> int:
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index < 1 << 31:
        raise InvalidInputError(f"a {what} is an int >= 1, not {index!r}")
    return index


def _index_set(indexes: Any, what: str) -> set[int]:
    if not isinstance(indexes, (list, tuple, set, frozenset)):
        raise InvalidInputError(f"{what} must be a list of client indexes")
    out = {_index(i) for i in indexes}
    if len(out) != len(indexes):
        raise InvalidInputError(f"{what} names a client twice")
    return out


def _check_keys(keys: Any, where: str) -> tuple[bytes, bytes]:
    if not isinstance(keys, Mapping) or set(keys) != _KEY_NAMES:
        raise InvalidInputError(f"{where}: the public keys are a dict with exactly "
                                "'c_pk' and 's_pk'")
    c_pk, s_pk = keys["c_pk"], keys["s_pk"]
    for value in (c_pk, s_pk):
        if not isinstance(value, bytes) or len(value) != KEY_BYTES:
            raise InvalidInputError(f"{where}: a public key is {KEY_BYTES} bytes")
    if c_pk == s_pk:
        raise InvalidInputError(f"{where}: the two public keys must differ")
    return c_pk, s_pk


# -- the client ---------------------------------------------------------------------
class SecAggClient:
    """One client's side of one round (fresh X25519 key pairs per object)."""

    def __init__(self, index: int, round_id: str | int, threshold: int) -> None:
        self.index = _index(index)
        self.round_id = _round(round_id)
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 2:
            raise ConfigError(f"the SecAgg threshold must be an int >= 2, not {threshold!r}")
        self.threshold = threshold
        self._c_sk = X25519PrivateKey.generate()
        self._s_sk = X25519PrivateKey.generate()
        self._step = "advertise"
        self._keys: dict[int, tuple[bytes, bytes]] = {}
        self._b = b""
        self._held: dict[int, tuple[bytes, bytes]] = {}  # peer → (b share, s-key share)
        self._peers: list[int] = []
        self._revealed: dict[int, str] = {}
        self._cached: dict[str, Any] = {}

    def advertise(self) -> dict[str, bytes]:
        """Step 1: this client's two raw 32-byte X25519 public keys, for the server."""
        return {"c_pk": self._c_sk.public_key().public_bytes_raw(),
                "s_pk": self._s_sk.public_key().public_bytes_raw()}

    def share_keys(self, public_keys: Mapping[int, Mapping[str, bytes]]) -> dict[int, bytes]:
        """Step 2: for each other client in ``public_keys`` (U1, this one included), its
        shares of b_u and s_u's private key, AES-GCM encrypted for it. A repeat with the
        same keys returns the same ciphertexts."""
        fingerprint = _fingerprint(public_keys)
        if self._step != "advertise":
            return self._repeat("share_keys", fingerprint)
        self._keys = self._check_public_keys(public_keys)
        self._b = os.urandom(KEY_BYTES)
        xs = sorted(self._keys)
        b_shares = shamir.split(self._b, self.threshold, xs)
        sk_shares = shamir.split(self._s_sk.private_bytes_raw(), self.threshold, xs)
        self._held[self.index] = (b_shares[self.index], sk_shares[self.index])
        out: dict[int, bytes] = {}
        for v in xs:
            if v != self.index:
                nonce = os.urandom(_NONCE)
                out[v] = nonce + AESGCM(self._box_key(v)).encrypt(
                    nonce, b_shares[v] + sk_shares[v], _associated(self.round_id, self.index, v))
        self._step, self._cached["share_keys"] = "mask", (fingerprint, out)
        return out

    def mask(self, vector: np.ndarray, ciphertexts_for_me: Mapping[int, bytes]) -> np.ndarray:
        """Step 3: y_u = x_u + PRG(b_u) + Σ_{v>u} PRG(s_uv) − Σ_{v<u} PRG(s_uv) over the
        peers whose shares arrived (U2); ``vector`` is :func:`encode` d (uint64). Every
        ciphertext is checked first; masking twice is refused (it would leak x − x')."""
        x = np.asarray(vector)
        if x.ndim != 1 or x.dtype != np.uint64:
            raise InvalidInputError(f"mask takes an encode()d 1-D uint64 vector, not "
                                    f"{x.ndim}-D {x.dtype}")
        fingerprint = _fingerprint(ciphertexts_for_me) + hashlib.sha256(x.tobytes()).digest()
        if self._step != "mask":
            return self._repeat("mask", fingerprint)
        held = self._open_shares(ciphertexts_for_me)
        y = x.copy()
        np.add(y, prg(self._b, y.size), out=y)
        for v in sorted(held):
            stream = prg(_mask_seed(self._s_sk, self._keys[v][1], self.round_id,
                                    self.index, v), y.size)
            (np.add if v > self.index else np.subtract)(y, stream, out=y)
        self._held.update(held)
        self._peers = sorted(held)
        self._step, self._cached["mask"] = "unmask", (fingerprint, y)
        return y.copy()

    def unmask(self, survivors: Sequence[int], dropped: Sequence[int]
               ) -> dict[str, dict[int, bytes]]:
        """Step 4: {"b": {v: share of b_v} for the survivors, "sk": {v: share of s_v's
        key} for the dropped}; refused when a peer is asked for in both (now or in an
        earlier call), or the lists do not split this client's round (U2) in two."""
        if self._step != "unmask":
            raise InvalidInputError(f"client {self.index} has not masked its input yet: "
                                    "unmask comes after mask")
        alive, gone = _index_set(survivors, "survivors"), _index_set(dropped, "dropped")
        wanted = dict.fromkeys(alive, "b") | dict.fromkeys(gone, "sk")
        both = (alive & gone) | {v for v, kind in wanted.items()
                                 if self._revealed.get(v, kind) != kind}
        if both:
            raise InvalidInputError(f"client {self.index} refuses to unmask: the server asks "
                                    f"for both shares of client(s) {sorted(both)}, which "
                                    "would reveal their inputs")
        members = {*self._peers, self.index}
        if alive | gone != members or self.index not in alive:
            raise InvalidInputError(f"client {self.index} refuses to unmask: survivors and "
                                    f"dropped must split the round's clients {sorted(members)}, "
                                    "with this client among the survivors")
        if len(alive) < self.threshold:
            raise InvalidInputError(f"client {self.index} refuses to unmask: {len(alive)} "
                                    f"survivors are fewer than the threshold {self.threshold}")
        self._revealed.update(wanted)
        return {"b": {v: self._held[v][0] for v in sorted(alive)},
                "sk": {v: self._held[v][1] for v in sorted(gone)}}

    def _repeat(self, step: str, fingerprint: bytes) -> Any:
        done = self._cached.get(step)
        if done is None or done[0] != fingerprint:
            raise InvalidInputError(f"client {self.index} already passed {step} with other "
                                    "inputs: a SecAggClient serves one round, make a new one")
        return done[1].copy() if isinstance(done[1], np.ndarray) else dict(done[1])

    def _check_public_keys(self, public_keys: Any) -> dict[int, tuple[bytes, bytes]]:
        if not isinstance(public_keys, Mapping):
            raise InvalidInputError("public_keys must be a dict {client index: keys}")
        keys = {_index(v): _check_keys(k, f"client {v}") for v, k in public_keys.items()}
        if keys.get(self.index) != tuple(self.advertise().values()):
            raise InvalidInputError(f"the public keys sent to client {self.index} do not hold "
                                    "its own: they belong to another client or round")
        if len({pk for pair in keys.values() for pk in pair}) != 2 * len(keys):
            raise InvalidInputError("two clients advertised the same public key: refused")
        if len(keys) < self.threshold or 2 * self.threshold <= len(keys):
            raise InvalidInputError(f"{len(keys)} clients advertised keys; a threshold of "
                                    f"{self.threshold} needs n/2 < t <= n")
        return keys

    def _box_key(self, v: int) -> bytes:
        return _kdf(_agree(self._c_sk, self._keys[v][0]), "shares", self.round_id, self.index, v)

    def _open_shares(self, ciphertexts: Any) -> dict[int, tuple[bytes, bytes]]:
        if not isinstance(ciphertexts, Mapping):
            raise InvalidInputError("ciphertexts_for_me must be a dict {client index: bytes}")
        peers = {_index(v) for v in ciphertexts}
        unknown = peers - (set(self._keys) - {self.index})
        if unknown:
            raise InvalidInputError(f"client {self.index} got shares from client(s) "
                                    f"{sorted(unknown)} that did not advertise keys this round")
        if len(peers) + 1 < self.threshold:
            raise InvalidInputError(f"only {len(peers) + 1} clients shared their keys; the "
                                    f"threshold is {self.threshold}: the round cannot go on")
        out: dict[int, tuple[bytes, bytes]] = {}
        size = shamir.SHARE_BYTES
        for v in sorted(peers):
            blob = ciphertexts[v]
            try:
                if not isinstance(blob, bytes) or len(blob) != CIPHERTEXT_BYTES:
                    raise InvalidTag
                plain = AESGCM(self._box_key(v)).decrypt(
                    blob[:_NONCE], blob[_NONCE:], _associated(self.round_id, v, self.index))
            except InvalidTag:
                raise InvalidInputError(f"the shares client {v} sent to client {self.index} do "
                                        "not decrypt: tampered with, or from another round"
                                        ) from None
            out[v] = (plain[:size], plain[size:])
        return out


def _fingerprint(message: Any) -> bytes:
    try:
        return hashlib.sha256(json.dumps(to_json(message), sort_keys=True).encode()).digest()
    except InvalidInputError:
        return b"?"  # not a message at all: the step's own checks will say why


# -- the server ---------------------------------------------------------------------
class SecAggServer:
    """The server's side of one round: routes the clients' messages and, at the end,
    removes the masks from the sum. Its methods are thread-safe."""

    def __init__(self, n_expected: int, threshold: int | None, vector_len: int,
                 round_id: str | int) -> None:
        t = default_threshold(n_expected) if threshold is None else threshold
        self.threshold = check_threshold(t, n_expected)
        if isinstance(vector_len, bool) or not isinstance(vector_len, int) or vector_len < 1:
            raise ConfigError(f"vector_len must be an int >= 1, not {vector_len!r}")
        self.n_expected, self.vector_len, self.round_id = n_expected, vector_len, _round(round_id)
        self._lock = threading.Lock()
        self._keys: dict[int, tuple[bytes, bytes]] = {}
        self._u1: list[int] | None = None
        self._shares: dict[int, dict[int, bytes]] = {}
        self._u2: list[int] | None = None
        self._masked: set[int] = set()
        self._total = np.zeros(vector_len, dtype=np.uint64)
        self.survivors: list[int] = []  #: U3, once unmask_request() was called
        self.dropped: list[int] = []    #: U2 − U3: shared their keys, never sent a vector

    def add_keys(self, index: int, keys: Mapping[str, bytes]) -> None:
        """Step 1 in: client ``index``'s :meth:`SecAggClient.advertise` answer."""
        with self._lock:
            u = self._member(index, range(1, self.n_expected + 1), "advertise keys",
                             self._u1 is None, self._keys)
            pair = _check_keys(keys, f"client {u}")
            if set(pair) & {pk for p in self._keys.values() for pk in p}:
                raise InvalidInputError(f"client {u} advertised a key another client sent")
            self._keys[u] = pair

    def public_keys(self) -> dict[int, dict[str, bytes]]:
        """Step 1 out (ends step 1): every advertised key pair, for every client in U1."""
        with self._lock:
            if self._u1 is None:
                self._enough(len(self._keys), "advertised their keys")
                self._u1 = sorted(self._keys)
            return {u: {"c_pk": self._keys[u][0], "s_pk": self._keys[u][1]} for u in self._u1}

    def add_shares(self, index: int, ciphertexts: Mapping[int, bytes]) -> None:
        """Step 2 in: client ``index``'s :meth:`SecAggClient.share_keys` answer."""
        with self._lock:
            u = self._member(index, self._u1 or (), "send shares",
                             self._u1 is not None and self._u2 is None, self._shares)
            peers = set(self._u1 or ()) - {u}
            if not isinstance(ciphertexts, Mapping) or set(ciphertexts) != peers:
                raise InvalidInputError(f"client {u} must send one ciphertext for each other "
                                        "client that advertised keys")
            if any(not isinstance(c, bytes) or len(c) != CIPHERTEXT_BYTES
                   for c in ciphertexts.values()):
                raise InvalidInputError(f"client {u} sent a ciphertext that is not "
                                        f"{CIPHERTEXT_BYTES} bytes")
            self._shares[u] = dict(ciphertexts)

    def ciphertexts_for(self, index: int) -> dict[int, bytes]:
        """Step 2 out (the first call ends step 2): the shares the other clients in U2
        encrypted for client ``index`` (which must be in U2)."""
        with self._lock:
            if self._u1 is None:
                raise InvalidInputError("no shares yet: call public_keys() first")
            if self._u2 is None:
                self._enough(len(self._shares), "shared their keys")
                self._u2 = sorted(self._shares)
            if index not in self._u2:
                raise InvalidInputError(f"client {index} did not share its keys in time: it "
                                        "sits this round out")
            return {v: self._shares[v][index] for v in self._u2 if v != index}

    def add_masked(self, index: int, masked: np.ndarray) -> None:
        """Step 3 in: client ``index``'s masked vector (uint64, ``vector_len`` long)."""
        with self._lock:
            u = self._member(index, self._u2 or (), "send a masked vector",
                             self._u2 is not None and not self.survivors, self._masked)
            y = np.asarray(masked)
            if y.dtype != np.uint64 or y.shape != (self.vector_len,):
                raise InvalidInputError(f"client {u}'s masked vector must be uint64 of shape "
                                        f"({self.vector_len},), not {y.dtype} {y.shape}")
            np.add(self._total, y, out=self._total)
            self._masked.add(u)

    def unmask_request(self) -> dict[str, list[int]]:
        """Step 3 out (ends step 3): {"survivors": U3, "dropped": U2 − U3}, the arguments
        of every survivor's :meth:`SecAggClient.unmask`."""
        with self._lock:
            if self._u2 is None:
                raise InvalidInputError("no masked vectors yet: route the shares first")
            if not self.survivors:
                self._enough(len(self._masked), "sent their masked vectors")
                self.survivors = sorted(self._masked)
                self.dropped = sorted(set(self._u2) - self._masked)
            return {"survivors": list(self.survivors), "dropped": list(self.dropped)}

    def finish(self, responses: Mapping[int, Mapping[str, Mapping[int, bytes]]]) -> np.ndarray:
        """Step 4: the uint64 sum of the survivors' vectors from ≥ t survivors' unmask
        answers {index: answer}; :func:`decode` it. Repeatable (it changes nothing)."""
        with self._lock:
            if not self.survivors:
                raise InvalidInputError("call unmask_request() before finish()")
            answers = {self._checked_answer(w, r) for w, r in responses.items()}
            self._enough(len(answers), "answered the unmask request")
            holders = sorted(answers)[:self.threshold]
            lam = shamir.lagrange_at_zero(holders)
            total = self._total.copy()
            for u in self.survivors:
                b_u = shamir.combine(lam, [responses[w]["b"][u] for w in holders])
                np.subtract(total, prg(b_u, self.vector_len), out=total)
            for v in self.dropped:
                self._remove_pairwise(total, v, shamir.combine(
                    lam, [responses[w]["sk"][v] for w in holders]))
            return total

    def _remove_pairwise(self, total: np.ndarray, v: int, private: bytes) -> None:
        key = X25519PrivateKey.from_private_bytes(private)
        if key.public_key().public_bytes_raw() != self._keys[v][1]:
            raise InvalidInputError(f"the key shares of dropped client {v} reconstruct a key "
                                    "that is not the one it advertised: a share was corrupted")
        for u in self.survivors:  # u added +PRG(s_uv) when v > u, −PRG(s_uv) when v < u
            stream = prg(_mask_seed(key, self._keys[u][1], self.round_id, v, u), self.vector_len)
            (np.subtract if v > u else np.add)(total, stream, out=total)

    def _checked_answer(self, index: Any, answer: Any) -> int:
        w = _index(index)
        if w not in self.survivors:
            raise InvalidInputError(f"client {w} did not send a masked vector: its unmask "
                                    "answer is not expected")
        if not isinstance(answer, Mapping) or set(answer) != {"b", "sk"} \
                or not isinstance(answer["b"], Mapping) or not isinstance(answer["sk"], Mapping) \
                or set(answer["b"]) != set(self.survivors) \
                or set(answer["sk"]) != set(self.dropped):
            raise InvalidInputError(f"client {w}'s unmask answer must be {{'b': shares for "
                                    f"{self.survivors}, 'sk': shares for {self.dropped}}}")
        return w

    def _member(self, index: Any, allowed: Collection[int], action: str, open_: bool,
                seen: Collection[int]) -> int:
        u = _index(index)
        if not open_:
            raise InvalidInputError(f"client {u} cannot {action} now: that step is not open "
                                    "(it has ended, or an earlier one has not)")
        if u not in allowed:
            raise InvalidInputError(f"client {u} may not {action} in this round")
        if u in seen:
            raise InvalidInputError(f"client {u} already did {action} in this round")
        return u

    def _enough(self, count: int, what: str) -> None:
        if count < self.threshold:
            raise ServiceUnavailableError(
                f"only {count} of {self.n_expected} clients {what}; secure aggregation needs "
                f"at least the threshold of {self.threshold}: the round fails, retry it with "
                "more clients or a longer timeout")


# -- the wire -----------------------------------------------------------------------
def to_json(message: Any) -> Any:
    """A SecAgg message as JSON-ready values: bytes as base64 strings, int keys as
    strings (the masked vector is not a message: send it as an array)."""
    if isinstance(message, bytes):
        return base64.b64encode(message).decode("ascii")
    if isinstance(message, Mapping):
        return {str(k): to_json(v) for k, v in message.items()}
    if isinstance(message, (list, tuple)):
        return [to_json(v) for v in message]
    if isinstance(message, int) and not isinstance(message, bool):
        return message
    raise InvalidInputError(f"a SecAgg message holds only dicts, lists, ints and bytes, not "
                            f"{type(message).__name__}")


def from_json(value: Any) -> Any:
    """The inverse of :func:`to_json`: every string back to bytes, digit keys to ints."""
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise InvalidInputError("a SecAgg message holds a string that is not base64"
                                    ) from None
    if isinstance(value, dict):
        return {int(k) if k.isascii() and k.isdigit() else k: from_json(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidInputError(f"a SecAgg message holds no {type(value).__name__}")


# -- in process ---------------------------------------------------------------------
def secure_sum(vectors: Sequence[np.ndarray], *, drop_before_masking: Collection[int] = (),
               drop_after_masking: Collection[int] = (), silent_at_unmask: Collection[int] = (),
               threshold: int | None = None, scale_bits: int = DEFAULT_SCALE_BITS,
               round_id: str | int = "in-process") -> np.ndarray:
    """The float64 sum of ``vectors`` run through the whole protocol in this process (for
    tests and in-process simulation). Positions (0-based) in ``drop_before_masking`` never
    send shares (excluded from the sum); in ``drop_after_masking`` share keys but their
    masked vector is lost (excluded; their masks removed via Shamir); in
    ``silent_at_unmask`` mask but skip the unmask step (still summed)."""
    n = len(vectors)
    t = check_threshold(default_threshold(n) if threshold is None else threshold, n)
    encoded = [encode(v, scale_bits, summands=n) for v in vectors]
    if len({e.size for e in encoded}) != 1:
        raise InvalidInputError("the vectors to sum must have one length")
    for name, group in (("drop_before_masking", drop_before_masking),
                        ("drop_after_masking", drop_after_masking),
                        ("silent_at_unmask", silent_at_unmask)):
        if not set(group) <= set(range(n)):
            raise InvalidInputError(f"{name} holds positions outside 0 … {n - 1}")
    before, after, silent = set(drop_before_masking), set(drop_after_masking), set(silent_at_unmask)
    server = SecAggServer(n, t, encoded[0].size, round_id)
    clients = {i + 1: SecAggClient(i + 1, round_id, t) for i in range(n)}
    for u, c in clients.items():
        server.add_keys(u, c.advertise())
    keys = server.public_keys()
    sharing = [u for u in clients if u - 1 not in before]
    for u in sharing:
        server.add_shares(u, clients[u].share_keys(keys))
    for u in sharing:
        masked = clients[u].mask(encoded[u - 1], server.ciphertexts_for(u))
        if u - 1 not in after:
            server.add_masked(u, masked)
    request = server.unmask_request()
    answers = {u: clients[u].unmask(**request) for u in request["survivors"]
               if u - 1 not in silent}
    return decode(server.finish(answers), scale_bits)


__all__ = ["CIPHERTEXT_BYTES", "DEFAULT_SCALE_BITS", "SecAggClient", "SecAggServer",
           "check_threshold", "decode", "default_threshold", "encode", "from_json", "prg",
           "secure_sum", "to_json"]
