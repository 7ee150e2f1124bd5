"""The drift report's HTML page: structure, escaping, numbers and size."""

import copy
from html.parser import HTMLParser

import pytest

from mloop.monitoring.report import render_html

_VOID = {"meta", "br", "hr", "img", "input", "link", "path", "rect"}


class _Page(HTMLParser):
    """Checks that tags nest and close, and collects what the tests look at."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: list[list[str]] = []  # the text of each <tr> of the columns table
        self.in_body = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "tbody":
            self.in_body = True
        if tag == "tr" and self.in_body:
            self.rows.append([])
        if tag not in _VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()
        if tag == "tbody":
            self.in_body = False

    def handle_data(self, data):
        if self.in_body and self.rows:
            self.rows[-1].append(data)


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert parser.open == []
    return parser


def _report() -> dict:
    return {
        "reference": {"name": "data:/train@3", "rows": 100000, "profile": False},
        "current": {"name": "serving:churn (since 24h)", "rows": 5000},
        "method": "auto", "drift_share": 0.5, "share_drifted": 0.5, "dataset_drift": True,
        "created_at": 1795000000000, "seconds": 0.41,
        "columns": {
            "age": {"name": "age", "kind": "numeric", "method": "ks", "statistic": 0.0312345,
                    "p_value": 3.2e-07, "threshold": 0.05,
                    "effect": {"method": "wasserstein", "value": 0.04, "threshold": 0.1},
                    "drifted": False, "status": "ok", "reason": None, "warnings": [],
                    "reference_rows": 100000, "current_rows": 5000,
                    "plot": {"kind": "numeric", "edges": [0.0, 10.0, 20.0, 30.0],
                             "reference": [0.2, 0.5, 0.3], "current": [0.25, 0.45, 0.3]}},
            "plan": {"name": "plan", "kind": "categorical", "method": "chisquare",
                     "statistic": 12.1, "p_value": 0.002, "threshold": 0.05,
                     "effect": {"method": "jensenshannon", "value": 0.12, "threshold": 0.1},
                     "drifted": True, "status": "drift", "reason": None,
                     "warnings": ["1 category never seen in the reference: 'gold' "
                                  "(2.0% of current rows)"],
                     "reference_rows": 100000, "current_rows": 5000,
                     "plot": {"kind": "categorical", "labels": ["basic", "pro", "gold"],
                              "reference": [0.7, 0.3, 0.0], "current": [0.6, 0.38, 0.02]}},
            "notes": {"name": "notes", "kind": "categorical", "method": None,
                      "statistic": None, "p_value": None, "threshold": None, "effect": None,
                      "drifted": None, "status": "not_tested",
                      "reason": "all values are missing in the current data", "warnings": [],
                      "reference_rows": 100000, "current_rows": 0, "plot": None},
            "spend": {"name": "spend", "kind": "numeric", "method": "psi", "statistic": 0.31,
                      "p_value": None, "threshold": 0.2, "effect": None, "drifted": True,
                      "status": "drift", "reason": None, "warnings": [],
                      "reference_rows": 100000, "current_rows": 5000,
                      "plot": {"kind": "numeric", "edges": [1, 2, 3],
                               "reference": [0.5, 0.5], "current": [0.1, 0.9]}},
        },
    }


def test_page_has_header_table_and_one_chart_per_plotted_column():
    page = render_html(_report())
    parsed = parse(page)
    tags = [t for t, _ in parsed.tags]
    assert page.startswith("<!doctype html>")
    assert "Dataset drift: yes" in page
    assert "50%" in page and "data:/train@3" in page and "100,000 rows" in page
    assert "5,000 rows" in page and "auto" in page and "UTC" in page
    assert tags.count("svg") == 3  # notes has no plot
    assert tags.count("figure") == 4
    # drifted columns first (in report order), then untested, then the rest
    assert [row[0] for row in parsed.rows] == ["plan", "spend", "notes", "age"]
    classes = [a.get("class") for t, a in parsed.tags if t == "tr" and a.get("class")]
    assert classes == ["drift", "drift", "not_tested", "ok"]
    plan = "".join(parsed.rows[0])
    assert "DRIFT" in plan and "jensenshannon 0.12" in plan and "never seen" in plan


def test_page_is_self_contained():
    page = render_html(_report())
    lowered = page.lower()
    for forbidden in ("<script", "src=", "<link", "url(", "http:", "https:", "@import"):
        assert forbidden not in lowered
    assert "Content-Security-Policy" in page


def test_user_strings_are_escaped():
    report = _report()
    evil = "<script>alert(1)</script>"
    report["columns"][evil] = {**copy.deepcopy(report["columns"]["plan"]), "name": evil,
                               "warnings": ["value '<b>' seen"], "reason": "x & 'y'"}
    report["columns"][evil]["plot"]["labels"] = ["<img src=x>", "pro", "\"quoted\""]
    report["current"]["name"] = "<i>serving</i>"
    page = render_html(report)
    parse(page)
    assert "<script" not in page and "<img" not in page and "<b>'" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x&gt;" in page and "&lt;i&gt;serving&lt;/i&gt;" in page
    assert "x &amp; &#x27;y&#x27;" in page


def test_an_unknown_status_is_shown_escaped_and_never_becomes_a_class():
    report = _report()
    report["columns"]["age"]["status"] = "<odd' status>"
    page = render_html(report)
    parsed = parse(page)
    assert "&lt;odd&#x27; status&gt;" in page
    classes = {a["class"] for t, a in parsed.tags if t in ("tr", "figure") and "class" in a}
    assert classes == {"drift", "not_tested", "other"}


def test_numbers_are_compact():
    page = render_html(_report())
    assert "3.2e-07" in page  # age's p-value
    assert "0.03123" in page  # 4 significant digits
    assert "0.002" in page and "12.1" in page
    assert "0.31 <span class='m'>threshold 0.2</span>" in page  # psi: threshold on the statistic


def test_undecided_dataset_drift_and_untested_reason():
    report = _report()
    for col in report["columns"].values():
        col.update(status="not_tested", drifted=None, reason="too few rows in the current data")
    report.update(dataset_drift=None, share_drifted=None)
    page = render_html(report)
    parsed = parse(page)
    assert "Dataset drift: not decided" in page and "no column could be tested" in page
    assert all("too few rows in the current data" in "".join(row) for row in parsed.rows)
    assert len(parsed.rows) == 4  # never hidden


def test_untested_column_shows_its_reason():
    page = render_html(_report())
    notes = next(row for row in parse(page).rows if row[0] == "notes")
    assert "not tested" in notes
    assert "all values are missing in the current data" in notes


def test_categorical_chart_keeps_top_categories_and_cuts_long_labels():
    report = _report()
    plan = report["columns"]["plan"]
    plan["plot"] = {"kind": "categorical", "labels": [f"cat{i:02d}" for i in range(19)]
                    + ["a very long category label indeed"],
                    "reference": [0.05] * 20, "current": [0.01] * 19 + [0.81]}
    page = render_html(report)
    texts = [t for t, _ in parse(page).tags].count("g")
    assert texts == 8  # the others are summed on one line of text
    assert "12 more categories, 60%\u219212% of rows together" in page
    assert "a very long categ\u2026" in page
    assert "a very long category label indeed: reference 5.0%, current 81.0%" in page


@pytest.mark.parametrize("plot", [
    {"kind": "numeric", "edges": [0, 1], "reference": [0.5, 0.5], "current": [1.0]},
    {"kind": "numeric", "edges": None, "reference": [1.0], "current": [1.0]},
    {"kind": "categorical", "labels": ["a"], "reference": ["x"], "current": [1.0]},
    {"kind": "numeric", "edges": [0, "inf"], "reference": [None], "current": [float("nan")]},
    "not a dict",
])
def test_odd_plots_never_break_the_page(plot):
    report = _report()
    report["columns"]["age"]["plot"] = plot
    page = render_html(report)
    parse(page)
    assert "age" in page


def test_missing_fields_render_as_dashes():
    page = render_html({"columns": {"x": {"status": "ok"}}})
    parse(page)
    assert "Dataset drift: not decided" in page and "<td>-</td>" in page


def _big_report(columns: int = 25, bins: int = 30) -> dict:
    report = _report()
    report["columns"] = {}
    for i in range(columns):
        name = f"feature_with_a_longish_name_{i:03d}"
        col = copy.deepcopy(_report()["columns"]["age" if i % 2 else "plan"])
        col["name"] = name
        if i % 2:
            col["plot"] = {"kind": "numeric",
                           "edges": [1234.5678 + 17.123456789 * b for b in range(bins + 1)],
                           "reference": [1 / bins + 1e-9 * b for b in range(bins)],
                           "current": [1 / bins - 1e-9 * b for b in range(bins)]}
        else:
            col["plot"] = {"kind": "categorical",
                           "labels": [f"category label number {b} of many" for b in range(bins)],
                           "reference": [1 / bins] * bins, "current": [1 / bins] * bins}
            col["warnings"] = ["3 categories never seen in the reference: 'a', 'b', 'c'"]
        report["columns"][name] = col
    return report


def test_a_25_column_report_stays_small():
    page = render_html(_big_report())
    assert [t for t, _ in parse(page).tags].count("svg") == 25
    assert len(page.encode()) < 150_000
