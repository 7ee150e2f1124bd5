"""Batches: put from many threads without waking the consumer; taken whole, in order."""

from __future__ import annotations

import threading
import time

from mloop.core.batches import Batches


def test_items_are_taken_whole_and_in_order_and_a_full_hand_off_drops_and_counts():
    batches: Batches[int] = Batches(limit=3)
    assert [batches.put(i) for i in range(5)] == [True, True, True, False, False]
    assert batches.dropped == 2 and len(batches) == 3
    assert batches.take() == [0, 1, 2] and batches.take() == []


def test_the_consumer_sleeps_its_interval_unless_woken_and_stops_when_closed():
    batches: Batches[int] = Batches(limit=100)
    start = time.monotonic()
    assert batches.wait(0.05) and time.monotonic() - start >= 0.04  # nobody woke it
    batches.put(1)
    batches.wake()
    start = time.monotonic()
    assert batches.wait(5) and time.monotonic() - start < 1  # woken early
    batches.close()
    assert batches.wait(5) is False and batches.take() == [1]


def test_many_producers_lose_nothing():
    batches: Batches[tuple[int, int]] = Batches(limit=10**6)
    threads = [threading.Thread(target=lambda t=t: [batches.put((t, i)) for i in range(5000)])
               for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = batches.take()
    assert len(taken) == 20_000 and batches.dropped == 0
    for t in range(4):  # each producer's items stay in its order
        assert [i for p, i in taken if p == t] == list(range(5000))
