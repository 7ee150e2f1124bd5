"""Counts, sizes and times as people read them."""

import re

from hypothesis import given
from hypothesis import strategies as st

from mloop.core.humanize import human_size, iso_ms, plural


def test_plural():
    assert plural(0, "job") == "0 jobs"
    assert plural(1, "job") == "1 job"
    assert plural(1, "warning") == "1 warning"
    assert plural(2, "entry") == "2 entries"
    assert plural(12_345, "metric point") == "12,345 metric points"
    assert plural(3, "person", "people") == "3 people"


@given(st.integers(min_value=0, max_value=10**9))
def test_plural_never_says_one_of_many(n):
    text = plural(n, "job")
    assert (text == "1 job") == (n == 1)
    assert text.endswith("jobs") or n == 1


def test_human_size():
    assert human_size(None) == "-"
    assert human_size(0) == "0 B"
    assert human_size(1023) == "1023 B"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(5 * 1024**2) == "5.0 MiB"
    assert human_size(1024**2 - 1) == "1.0 MiB"
    assert human_size(3 * 1024**4) == "3.0 TiB"


@given(st.integers(min_value=0, max_value=2**49))
def test_human_size_is_short_and_in_one_unit(n):
    assert re.fullmatch(r"\d+ B|\d{1,4}\.\d (KiB|MiB|GiB|TiB)", human_size(n))


def test_iso_ms():
    assert iso_ms(None) is None
    assert iso_ms(0) == "1970-01-01T00:00:00.000+00:00"
    assert iso_ms(1_765_000_000_123) == "2025-12-06T05:46:40.123+00:00"
