"""Table summaries: exact on small tables, sampled (with exact rows) on large ones."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mloop.data import stats


def _frame(n, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": np.arange(n), "x": rng.normal(0, 1, n).round(5),
                         "plan": rng.choice(["free", "pro", "team"], n)})


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 300), newline=st.sampled_from(["\n", "\r\n"]),
       trailing=st.booleans())
def test_counted_rows_equal_parsed_rows(tmp_path_factory, n, newline, trailing):
    assume(n > 0 or trailing)  # pyarrow cannot read a lone header without its newline
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    text = _frame(n).to_csv(index=False, lineterminator=newline)
    if not trailing:
        text = text[:-len(newline)]
    path.write_bytes(text.encode())
    assert stats.count_csv_rows(path) == stats.read_table(path, "csv").num_rows == n


@pytest.mark.parametrize("body", [
    'a,b\n1,"two\nlines"\n',  # a quoted newline: lines are not rows
    "a,b\n1,2\n\n3,4\n",  # a blank line is not a row
    "\na,b\n1,2\n",
    "a,b\r\n1,2\r\n\r\n3,4\r\n",
])
@pytest.mark.parametrize("block", [3, 4, 5, 1 << 20])  # blank lines across read blocks too
def test_line_counting_declines_when_lines_are_not_rows(tmp_path, monkeypatch, body, block):
    monkeypatch.setattr(stats, "_READ", block)
    path = tmp_path / "t.csv"
    path.write_bytes(body.encode())
    assert stats.count_csv_rows(path) is None


@pytest.mark.parametrize("block", [1, 2, 3, 7, 1 << 20])
def test_line_counting_is_exact_whatever_the_read_size(tmp_path, monkeypatch, block):
    monkeypatch.setattr(stats, "_READ", block)
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\r\n1,2\r\n3,4\r\n5,6")
    assert stats.count_csv_rows(path) == 3


def test_a_large_csv_is_summarised_from_a_sample_with_exact_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(stats, "FULL_PROFILE_BYTES", 100_000)
    monkeypatch.setattr(stats, "SAMPLE_BLOCK_BYTES", 20_000)
    path = tmp_path / "t.csv"
    df = _frame(50_000)
    df.to_csv(path, index=False)
    summary = stats.summarize_path(path)
    assert summary["rows"] == 50_000
    assert 0 < summary["sample_rows"] < 50_000
    assert summary["columns"]["plan"]["distinct"] == 3
    assert abs(summary["columns"]["x"]["mean"]) < 0.1  # a fair sample of N(0, 1)
    quoted = tmp_path / "q.csv"
    df.assign(plan='"' + df.plan + '"').to_csv(quoted, index=False)
    full = stats.summarize_path(quoted)  # quotes: parsed in full, exact
    assert full["rows"] == 50_000 and "sample_rows" not in full


def test_a_large_parquet_keeps_exact_min_max_nulls_from_its_footer(tmp_path, monkeypatch):
    monkeypatch.setattr(stats, "FULL_PROFILE_BYTES", 10_000)
    monkeypatch.setattr(stats, "SAMPLE_BLOCKS", 2)
    df = _frame(40_000)
    df.loc[::7, "x"] = np.nan
    df.loc[123, "x"] = 99.0  # in a row group the sample skips
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=4_000)
    summary = stats.summarize_path(path)
    x = summary["columns"]["x"]
    assert summary["rows"] == 40_000 and summary["sample_rows"] == 8_000
    assert x["max"] == 99.0 and x["min"] == df.x.min()
    assert x["nulls"] == int(df.x.isna().sum())
