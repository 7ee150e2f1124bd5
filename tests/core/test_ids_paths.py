import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.core.ids import id_time_ms, new_id
from mloop.core.paths import safe_join, safe_relpath
from mloop.errors import UnsafePathError


def test_ids_are_time_ordered_and_unique():
    ids = [new_id() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and i[12] == "7" for i in ids)  # UUIDv7 version nibble
    assert abs(id_time_ms(ids[-1]) - time.time() * 1000) < 5_000


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", "C:/x", "..", "a\x00b",
                                 "..\\x", "", "\ud800"])
def test_unsafe_paths_rejected(bad):
    with pytest.raises(UnsafePathError):
        safe_relpath(bad)


def test_paths_normalised():
    assert safe_relpath("a/./b/../c") == "a/c"
    assert safe_relpath("plots\\roc.png") == "plots/roc.png"
    assert safe_relpath("", allow_empty=True) == ""


segment = st.text(alphabet=st.characters(blacklist_characters="/\\\x00"), min_size=1,
                  max_size=8)


@given(st.lists(st.one_of(segment, st.just(".."), st.just(".")), min_size=1, max_size=8))
def test_accepted_paths_never_escape(tmp_path_factory, parts):
    root = tmp_path_factory.getbasetemp() / "root"
    try:
        rel = safe_relpath("/".join(parts))
    except UnsafePathError:
        return
    joined = safe_join(root, rel).resolve()
    assert joined == root.resolve() or root.resolve() in joined.parents
