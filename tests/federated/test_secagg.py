"""Secure aggregation: the sum is exact (within the fixed-point quantization) through
drop-outs, the server learns no single input, and a client refuses what would reveal one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.errors import ConfigError, InvalidInputError, ServiceUnavailableError
from mloop.federated.secagg import (
    CIPHERTEXT_BYTES,
    SecAggClient,
    SecAggServer,
    check_threshold,
    decode,
    default_threshold,
    encode,
    from_json,
    prg,
    secure_sum,
    to_json,
)

F = 24


def start(n: int, t: int | None = None, length: int = 5, round_id: str = "r1",
          absent: frozenset[int] = frozenset()):
    """A server and n clients past step 2 (clients in ``absent`` never share keys)."""
    server = SecAggServer(n, t, length, round_id)
    clients = {u: SecAggClient(u, round_id, server.threshold) for u in range(1, n + 1)}
    for u, c in clients.items():
        server.add_keys(u, c.advertise())
    keys = server.public_keys()
    for u, c in clients.items():
        if u not in absent:
            server.add_shares(u, c.share_keys(keys))
    return server, clients


def vectors(n: int, length: int = 5, seed: int = 0) -> list[np.ndarray]:
    return list(np.random.default_rng(seed).normal(size=(n, length)))


def mask_all(server, clients, xs, skip=frozenset(), lost=frozenset()):
    """Step 3 for every client that shared: ``lost`` ones mask but never deliver."""
    for u, c in clients.items():
        if u in skip:
            continue
        y = c.mask(encode(xs[u - 1], F, summands=len(xs)), server.ciphertexts_for(u))
        if u not in lost:
            server.add_masked(u, y)


def finish(server, clients, silent=frozenset()):
    request = server.unmask_request()
    answers = {u: clients[u].unmask(**request) for u in request["survivors"] if u not in silent}
    return decode(server.finish(answers), F)


# -- fixed point --------------------------------------------------------------------
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30), st.integers(0, 30))
def test_encode_decode_round_trip_within_half_a_step(values, f):
    x = np.array(values)
    assert np.all(np.abs(decode(encode(x, f), f) - x) <= 2.0 ** -(f + 1))


def test_the_modular_sum_of_encodings_is_the_sum_of_values_with_negatives():
    xs = [np.array([-3.25, 1e-7, 2.0**30]), np.array([1.0, -2.0**30, -2.0**31])]
    summed = encode(xs[0], F, summands=2) + encode(xs[1], F, summands=2)  # wraps mod 2^64
    assert np.allclose(decode(summed, F), xs[0] + xs[1], atol=2.0 ** -F)


def test_encode_refuses_values_the_sum_could_overflow_and_nan():
    limit = 2.0 ** (62 - F) / 10
    encode(np.array([limit * 0.99]), F, summands=10)
    with pytest.raises(InvalidInputError, match="clip the updates"):
        encode(np.array([0.0, -limit]), F, summands=10)
    with pytest.raises(InvalidInputError, match="NaN"):
        encode(np.array([np.nan]), F)
    with pytest.raises(InvalidInputError, match="1-D"):
        encode(np.zeros((2, 2)), F)
    with pytest.raises(ConfigError, match="scale_bits"):
        encode(np.zeros(2), 61)
    with pytest.raises(ConfigError, match="summands"):
        encode(np.zeros(2), F, summands=0)
    with pytest.raises(InvalidInputError, match="uint64"):
        decode(np.zeros(2, dtype=np.int64), F)


def test_prg_is_deterministic_per_seed_and_differs_between_seeds():
    a, b = prg(bytes(32), 1000), prg(bytes(31) + b"\x01", 1000)
    assert a.dtype == np.uint64 and np.array_equal(a, prg(bytes(32), 1000))
    assert not np.array_equal(a, b) and np.array_equal(prg(bytes(32), 10), a[:10])


# -- thresholds ---------------------------------------------------------------------
def test_threshold_default_and_bounds():
    assert [default_threshold(n) for n in (2, 3, 4, 10, 100)] == [2, 2, 3, 7, 67]
    assert check_threshold(6, 10) == 6
    for t, n in [(5, 10), (11, 10), (1, 2), (True, 2)]:
        with pytest.raises(ConfigError, match="n/2 < t <= n"):
            check_threshold(t, n)
    with pytest.raises(ConfigError, match="at least 2 clients"):
        check_threshold(2, 1)
    with pytest.raises(ConfigError):
        SecAggServer(4, 2, 5, "r")  # t = n/2 would let a server split the clients


# -- the protocol -------------------------------------------------------------------
@settings(max_examples=25)
@given(st.data())
def test_secure_sum_equals_the_plain_sum_through_drop_outs(data):
    n = data.draw(st.integers(2, 6), label="n")
    t = data.draw(st.integers(n // 2 + 1, n), label="t")
    length = data.draw(st.integers(1, 12), label="length")
    xs = [np.array(data.draw(st.lists(st.floats(-1e3, 1e3), min_size=length,
                                      max_size=length))) for _ in range(n)]
    spare = n - t
    before = data.draw(st.sets(st.integers(0, n - 1), max_size=spare), label="before")
    after = data.draw(st.sets(st.sampled_from(sorted(set(range(n)) - before) or [0]),
                              max_size=spare - len(before)), label="after") - before
    alive = sorted(set(range(n)) - before - after)
    silent = data.draw(st.sets(st.sampled_from(alive), max_size=len(alive) - t), label="silent")
    total = secure_sum(xs, drop_before_masking=before, drop_after_masking=after,
                       silent_at_unmask=silent, threshold=t, scale_bits=F)
    expected = np.sum([xs[i] for i in alive], axis=0)
    assert np.all(np.abs(total - expected) <= n * 2.0 ** -(F + 1) + 1e-9)


def test_drop_outs_after_masking_are_unmasked_through_shamir():
    xs = vectors(6)
    server, clients = start(6)
    mask_all(server, clients, xs, lost={2, 5})  # 2 and 5 masked with the others, then left
    assert server.unmask_request() == {"survivors": [1, 3, 4, 6], "dropped": [2, 5]}
    total = finish(server, clients)
    assert np.allclose(total, xs[0] + xs[2] + xs[3] + xs[5], atol=1e-6)


def test_drop_outs_before_masking_are_excluded():
    xs = vectors(5)
    server, clients = start(5, absent=frozenset({4}))
    with pytest.raises(InvalidInputError, match="sits this round out"):
        server.ciphertexts_for(4)
    mask_all(server, clients, xs, skip={4})
    assert server.unmask_request()["dropped"] == []
    assert np.allclose(finish(server, clients), xs[0] + xs[1] + xs[2] + xs[4], atol=1e-6)


def test_silent_survivors_are_still_summed_when_t_answer():
    xs = vectors(5)
    server, clients = start(5, 3)
    mask_all(server, clients, xs)
    assert np.allclose(finish(server, clients, silent={1, 2}), np.sum(xs, axis=0), atol=1e-6)


def test_fewer_than_t_at_any_step_is_a_clear_failure():
    server = SecAggServer(5, 4, 3, "r")
    for u in (1, 2, 3):
        server.add_keys(u, SecAggClient(u, "r", 4).advertise())
    with pytest.raises(ServiceUnavailableError, match="only 3 of 5 clients advertised"):
        server.public_keys()

    server, clients = start(5, 4)
    mask_all(server, clients, vectors(5), lost={1, 2})
    with pytest.raises(ServiceUnavailableError, match="only 3 of 5 clients sent their masked"):
        server.unmask_request()

    server, clients = start(5, 4)
    mask_all(server, clients, vectors(5), lost={1})
    with pytest.raises(ServiceUnavailableError, match="answered the unmask"):
        finish(server, clients, silent={2})
    with pytest.raises(ServiceUnavailableError, match="the threshold of 4"):
        secure_sum(vectors(5), drop_before_masking={0}, drop_after_masking={1}, threshold=4)


def test_a_tampered_or_misrouted_ciphertext_is_refused():
    server, clients = start(3)
    cts = server.ciphertexts_for(1)
    flipped = bytearray(cts[2])
    flipped[20] ^= 0x40
    with pytest.raises(InvalidInputError, match="shares client 2 sent to client 1 do not decrypt"):
        clients[1].mask(encode(np.zeros(5)), {**cts, 2: bytes(flipped)})
    with pytest.raises(InvalidInputError, match="do not decrypt"):  # meant for client 3
        clients[1].mask(encode(np.zeros(5)), {**cts, 2: server.ciphertexts_for(3)[2]})
    with pytest.raises(InvalidInputError, match="did not advertise"):
        clients[1].mask(encode(np.zeros(5)), {**cts, 9: cts[2]})
    # a round of another id cannot read them either (the round is in the associated data)
    other = SecAggClient(1, "r2", 2)
    other.__dict__.update({**clients[1].__dict__, "round_id": "r2"})  # same keys, other round
    with pytest.raises(InvalidInputError, match="do not decrypt"):
        other.mask(encode(np.zeros(5)), cts)
    y = clients[1].mask(encode(np.zeros(5)), cts)  # the genuine ones still work
    assert y.dtype == np.uint64


def test_a_client_refuses_both_shares_of_one_peer():
    server, clients = start(5, 3)
    mask_all(server, clients, vectors(5))
    with pytest.raises(InvalidInputError, match=r"both shares of client\(s\) \[2\]"):
        clients[1].unmask([1, 2, 3, 4, 5], [2])
    assert set(clients[1].unmask([1, 2, 3, 4, 5], [])["b"]) == {1, 2, 3, 4, 5}
    # asking again with client 2 now "dropped" would give its key share too: refused
    with pytest.raises(InvalidInputError, match=r"both shares of client\(s\) \[2\]"):
        clients[1].unmask([1, 3, 4, 5], [2])
    assert clients[1].unmask([1, 2, 3, 4, 5], [])["sk"] == {}  # a retry is fine


def test_a_client_refuses_an_unmask_request_that_does_not_fit_its_round():
    server, clients = start(5, 3)
    mask_all(server, clients, vectors(5))
    c = clients[1]
    with pytest.raises(InvalidInputError, match="fewer than the threshold"):
        c.unmask([1, 2], [3, 4, 5])
    with pytest.raises(InvalidInputError, match="this client among the survivors"):
        c.unmask([2, 3, 4, 5], [1])
    with pytest.raises(InvalidInputError, match="split the round's clients"):
        c.unmask([1, 2, 3, 4], [])
    with pytest.raises(InvalidInputError, match="names a client twice"):
        c.unmask([1, 1, 2, 3, 4, 5], [])
    fresh = SecAggClient(1, "r", 2)
    with pytest.raises(InvalidInputError, match="unmask comes after mask"):
        fresh.unmask([1, 2], [])


def test_the_server_alone_learns_no_input():
    n, length = 4, 4096
    xs = [np.zeros(length), *vectors(n - 1, length)]
    server, clients = start(n, 3, length)
    masked = {}
    for u, c in clients.items():
        masked[u] = c.mask(encode(xs[u - 1], F, summands=n), server.ciphertexts_for(u))
        server.add_masked(u, masked[u])
    zero = masked[1]  # client 1's input is all zeros: its masked vector must look uniform
    assert not np.any(zero == encode(xs[0], F, summands=n))
    counts = np.bincount(zero.view(np.uint8), minlength=256)
    expected = zero.size * 8 / 256
    assert ((counts - expected) ** 2 / expected).sum() < 400  # χ² with 255 dof: p ≈ 1e-8
    assert abs(float(np.mean(zero >> np.uint64(63))) - 0.5) < 0.05
    # even the sum of every masked vector is still masked (the self-masks stay on)
    plain = np.sum([encode(x, F, summands=n) for x in xs], axis=0, dtype=np.uint64)
    blind = np.sum(list(masked.values()), axis=0, dtype=np.uint64)
    assert np.mean(blind == plain) < 0.01
    # and masking the same input in another round gives another vector
    server2, clients2 = start(n, 3, length)
    again = clients2[1].mask(encode(xs[0], F, summands=n), server2.ciphertexts_for(1))
    assert np.mean(again == zero) < 0.01
    assert np.allclose(finish(server, clients), np.sum(xs, axis=0), atol=1e-6)


def test_a_corrupted_key_share_of_a_dropped_client_is_detected():
    server, clients = start(4, 3)
    mask_all(server, clients, vectors(4), lost={4})
    request = server.unmask_request()
    answers = {u: clients[u].unmask(**request) for u in request["survivors"]}
    answers[2]["sk"][4] = answers[3]["sk"][4]  # client 2 sends client 3's share
    with pytest.raises(InvalidInputError, match="corrupted"):
        server.finish(answers)
    answers[2] = clients[2].unmask(**request)
    assert server.finish(answers).dtype == np.uint64  # finish changed nothing: it can retry


def test_the_client_checks_the_public_keys_it_is_sent():
    clients = {u: SecAggClient(u, "r", 2) for u in (1, 2, 3)}
    keys = {u: c.advertise() for u, c in clients.items()}
    with pytest.raises(InvalidInputError, match="do not hold its own"):
        clients[1].share_keys({2: keys[2], 3: keys[3], 1: keys[2]})
    with pytest.raises(InvalidInputError, match="same public key"):
        clients[1].share_keys({**keys, 3: {"c_pk": keys[2]["c_pk"], "s_pk": keys[3]["s_pk"]}})
    with pytest.raises(InvalidInputError, match="n/2 < t"):
        clients[1].share_keys({1: keys[1]})
    with pytest.raises(InvalidInputError, match="32 bytes"):
        clients[1].share_keys({**keys, 2: {"c_pk": b"x", "s_pk": keys[2]["s_pk"]}})
    with pytest.raises(InvalidInputError, match="not a usable X25519 key"):
        clients[1].share_keys({**keys, 2: {"c_pk": bytes(32), "s_pk": keys[2]["s_pk"]}})
    first = clients[1].share_keys(keys)
    assert set(first) == {2, 3} and all(len(c) == CIPHERTEXT_BYTES for c in first.values())
    assert clients[1].share_keys(keys) == first  # a retry gets the same answer
    with pytest.raises(InvalidInputError, match="serves one round"):
        clients[1].share_keys({1: keys[1], 2: keys[2]})


def test_a_client_masks_once():
    server, clients = start(3)
    cts = server.ciphertexts_for(1)
    y = clients[1].mask(encode(np.ones(5)), cts)
    assert np.array_equal(clients[1].mask(encode(np.ones(5)), cts), y)  # a retry
    with pytest.raises(InvalidInputError, match="serves one round"):
        clients[1].mask(encode(np.zeros(5)), cts)  # would leak the difference of the two
    with pytest.raises(InvalidInputError, match="uint64"):
        clients[2].mask(np.ones(5), server.ciphertexts_for(2))


def test_the_server_refuses_what_does_not_fit_the_round():
    server = SecAggServer(3, None, 4, "r")
    clients = {u: SecAggClient(u, "r", 2) for u in (1, 2, 3)}
    with pytest.raises(InvalidInputError, match="may not advertise"):
        server.add_keys(4, clients[1].advertise())
    server.add_keys(1, clients[1].advertise())
    with pytest.raises(InvalidInputError, match="already did"):
        server.add_keys(1, clients[1].advertise())
    with pytest.raises(InvalidInputError, match="another client sent"):
        server.add_keys(2, clients[1].advertise())
    with pytest.raises(InvalidInputError, match="not open"):
        server.add_shares(1, {})
    server.add_keys(2, clients[2].advertise())
    keys = server.public_keys()
    with pytest.raises(InvalidInputError, match="not open"):
        server.add_keys(3, clients[3].advertise())  # too late
    with pytest.raises(InvalidInputError, match="may not send shares"):
        server.add_shares(3, {})
    with pytest.raises(InvalidInputError, match="one ciphertext for each"):
        server.add_shares(1, {})
    with pytest.raises(InvalidInputError, match=f"not {CIPHERTEXT_BYTES} bytes"):
        server.add_shares(1, {2: b"x"})
    for u in (1, 2):
        server.add_shares(u, clients[u].share_keys(keys))
    y = clients[1].mask(encode(np.zeros(4)), server.ciphertexts_for(1))
    with pytest.raises(InvalidInputError, match="shape"):
        server.add_masked(1, y[:3])
    with pytest.raises(InvalidInputError, match="uint64"):
        server.add_masked(1, y.astype(np.int64))
    with pytest.raises(InvalidInputError, match="before finish"):
        server.finish({})
    server.add_masked(1, y)
    server.add_masked(2, clients[2].mask(encode(np.ones(4)), server.ciphertexts_for(2)))
    request = server.unmask_request()
    with pytest.raises(InvalidInputError, match="not expected"):
        server.finish({3: {}})
    with pytest.raises(InvalidInputError, match="unmask answer must be"):
        server.finish({1: {"b": {}, "sk": {}}})
    answers = {u: clients[u].unmask(**request) for u in (1, 2)}
    assert np.array_equal(decode(server.finish(answers)), np.ones(4))


def test_every_message_survives_json():
    def wire(message):
        return from_json(json.loads(json.dumps(to_json(message))))

    xs = vectors(4, 7)
    server = SecAggServer(4, 3, 7, 12)
    clients = {u: SecAggClient(u, 12, 3) for u in (1, 2, 3, 4)}
    for u, c in clients.items():
        server.add_keys(u, wire(c.advertise()))
    keys = wire(server.public_keys())
    for u, c in clients.items():
        server.add_shares(u, wire(c.share_keys(keys)))
    for u, c in clients.items():
        y = c.mask(encode(xs[u - 1], F, summands=4), wire(server.ciphertexts_for(u)))
        if u != 3:
            server.add_masked(u, y)
    request = wire(server.unmask_request())
    answers = wire({u: clients[u].unmask(**request) for u in request["survivors"]})
    assert np.allclose(decode(server.finish(answers), F), xs[0] + xs[1] + xs[3], atol=1e-6)
    with pytest.raises(InvalidInputError, match="not base64"):
        from_json({"c_pk": "not base64!"})
    with pytest.raises(InvalidInputError, match="float"):
        to_json({"x": 1.5})


def test_a_dropped_client_that_shared_another_key_than_it_advertised_is_caught():
    server, clients = start(4, 3, absent=frozenset({4}))
    real, wrong = clients[4]._s_sk, SecAggClient(9, "r", 2)._s_sk

    class Mismatched:  # advertises one key, shares another
        def public_key(self):
            return real.public_key()

        def private_bytes_raw(self):
            return wrong.private_bytes_raw()

    clients[4]._s_sk = Mismatched()
    server.add_shares(4, clients[4].share_keys(server.public_keys()))
    mask_all(server, clients, vectors(4), skip={4})
    with pytest.raises(InvalidInputError, match="not the one it advertised"):
        finish(server, clients)
