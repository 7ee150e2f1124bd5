"""The evaluation report: metrics with intervals, slices, fairness, checks, the decision."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from typing import Any

from mloop.evaluation.checks import FAIL, PASS, WARN, CheckResult


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


@dataclass
class EvaluationReport:
    model: str
    data: str
    target: str
    task: str
    rows: int
    metrics: dict[str, dict[str, float]]  # name -> {value, low, high}
    checks: list[CheckResult]
    suite: str
    slices: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    fairness: dict[str, dict[str, Any]] = field(default_factory=dict)
    baseline: str | None = None
    baseline_metrics: dict[str, float] | None = None
    cv: dict[str, dict[str, float]] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    created_at: int = 0
    id: str | None = None
    notes: list[str] = field(default_factory=list)  # e.g. the columns left out of the input

    @property
    def passed(self) -> bool:
        """Every blocking check passed (warnings do not block)."""
        return not any(c.blocking for c in self.checks)

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in (PASS, WARN, FAIL)}

    def to_dict(self) -> dict[str, Any]:
        return _clean({
            "id": self.id, "model": self.model, "data": self.data, "target": self.target,
            "task": self.task, "rows": self.rows, "passed": self.passed, "suite": self.suite,
            "counts": self.counts, "metrics": self.metrics, "slices": self.slices,
            "fairness": self.fairness, "baseline": self.baseline,
            "baseline_metrics": self.baseline_metrics, "cv": self.cv,
            "checks": [c.to_dict() for c in self.checks], "timings": self.timings,
            "created_at": self.created_at, "notes": list(self.notes)})

    def to_json(self, path: str | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            _write(path, text)
        return text

    def to_html(self, path: str | None = None) -> str:
        """A standalone page (no scripts; everything escaped)."""
        e = html.escape
        colour = {PASS: "#1a7f37", WARN: "#9a6700", FAIL: "#cf222e"}
        rows = "".join(
            f"<tr><td style='color:{colour[c.status]}'><b>{e(c.status.upper())}</b></td>"
            f"<td>{e(c.name)}</td><td>{e(_fmt(c.value))}</td><td>{e(c.threshold)}</td>"
            f"<td>{e(c.severity)}</td><td>{e(c.explanation)}</td></tr>" for c in self.checks)
        metric_rows = "".join(
            f"<tr><td>{e(k)}</td><td>{_fmt(v['value'])}</td>"
            f"<td>{_fmt(v.get('low'))} to {_fmt(v.get('high'))}</td>"
            f"<td>{_fmt((self.baseline_metrics or {}).get(k))}</td></tr>"
            for k, v in self.metrics.items())
        slice_html = ""
        for column, groups in self.slices.items():
            names = sorted({m for g in groups.values() for m in g})
            head = "".join(f"<th>{e(n)}</th>" for n in names)
            body = "".join(f"<tr><td>{e(str(g))}</td>" + "".join(
                f"<td>{_fmt(vals.get(n))}</td>" for n in names) + "</tr>"
                for g, vals in groups.items())
            slice_html += (f"<h3>By {e(column)}</h3><table><tr><th>group</th>{head}</tr>"
                           f"{body}</table>")
        verdict = "PASSED" if self.passed else "FAILED"
        style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto}"
                 "table{border-collapse:collapse;margin-bottom:1em}"
                 "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}")
        return _maybe_write(path, (
            f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation of "
            f"{e(self.model)}</title><style>{style}</style></head><body>"
            f"<h1>{e(self.model)}: {verdict}</h1>"
            f"<p>{self.rows:,} rows of {e(self.data)}, target {e(self.target)} ({self.task}); "
            f"suite {e(self.suite)}; baseline {e(self.baseline or 'none')}.</p>"
            f"<h2>Checks</h2><table><tr><th>status</th><th>check</th><th>value</th>"
            f"<th>threshold</th><th>severity</th><th>why</th></tr>{rows}</table>"
            f"<h2>Metrics</h2><table><tr><th>metric</th><th>value</th><th>95% interval</th>"
            f"<th>baseline</th></tr>{metric_rows}</table>"
            f"<h2>Slices</h2>{slice_html or '<p>None requested.</p>'}</body></html>"))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _write(path: str, text: str) -> None:
    from pathlib import Path

    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text)
    tmp.replace(target)


def _maybe_write(path: str | None, text: str) -> str:
    if path is not None:
        _write(path, text)
    return text
