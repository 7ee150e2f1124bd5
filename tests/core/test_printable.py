"""``printable``: control characters from user text become visible escapes."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.core.printable import printable


@pytest.mark.parametrize(("text", "multi", "one"), [
    ("plain [bold]x[/bold] é 日本", "plain [bold]x[/bold] é 日本", "plain [bold]x[/bold] é 日本"),
    ("a\x1b[31mred", "a\\x1b[31mred", "a\\x1b[31mred"),
    ("two\nlines\tand tab", "two\nlines\tand tab", "two\\nlines\\tand tab"),
    ("crlf\r\nend", "crlf\nend", "crlf\\r\\nend"),
    ("over\rwrite", "over\\rwrite", "over\\rwrite"),
    ("nul\x00 del\x7f c1\x9b", "nul\\x00 del\\x7f c1\\x9b", "nul\\x00 del\\x7f c1\\x9b"),
    ("evil\u202egnp.exe", "evil\\u202egnp.exe", "evil\\u202egnp.exe"),
    ("sep\u2028x", "sep\\u2028x", "sep\\u2028x"),
])
def test_examples(text, multi, one):
    assert printable(text) == multi
    assert printable(text, one_line=True) == one


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) == "Cc" or char in "\u200e\u200f\u2028\u2029\ufeff" \
        or "\u202a" <= char <= "\u202e" or "\u2066" <= char <= "\u2069"


@given(st.text())
def test_nothing_unsafe_reaches_the_terminal(text):
    one = printable(text, one_line=True)
    assert not any(_unsafe(c) for c in one)
    multi = printable(text)
    assert not any(_unsafe(c) and c not in "\n\t" for c in multi)


@given(st.text(st.characters(exclude_categories=("Cc", "Cs"),
                             exclude_characters="\u200e\u200f\u2028\u2029\ufeff"
                                                "\u202a\u202b\u202c\u202d\u202e"
                                                "\u2066\u2067\u2068\u2069")))
def test_safe_text_is_unchanged(text):
    assert printable(text) == text == printable(text, one_line=True)
