"""The pieces of a model version's page: its stored evaluation reports as tables, its
signature, what can be exported, and its card's sections as HTML.

A report is the JSON ``mloop test`` / ``mloop.evaluate`` stored
(:meth:`mloop.evaluation.report.EvaluationReport.to_dict`); it is read as data, and
every value that reaches the page goes through the templates' escaping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from mloop.errors import NotFoundError
from mloop.evaluation.fairness import FAIRNESS_METRICS
from mloop.evaluation.metrics import METRICS
from mloop.server.ui.render import Column, Table, number

if TYPE_CHECKING:
    from mloop.project import Project
    from mloop.registry.models import ModelVersion
    from mloop.repositories.evaluations import Evaluation

# The report keeps each check's name, not its kind: the kind is read back from the name
# each kind gives its checks (mloop.evaluation.checks).
CHECK_GROUPS = ("Metrics and baseline", "Behaviour", "Data", "Robustness", "Fairness")


def check_group(name: str) -> str:
    """Which kind of check a result of that name came from."""
    if name.startswith("data:"):
        return "Data"
    if name.startswith("robustness:"):
        return "Robustness"
    head = name.split(" (", 1)[0]
    if head in FAIRNESS_METRICS:
        return "Fairness"
    if name.split(" ", 1)[0] in METRICS or name.startswith("beats ") \
            or name.endswith(" vs baseline"):
        return "Metrics and baseline"
    return "Behaviour"


@dataclass
class ReportView:
    """One stored evaluation, ready for the page."""

    evaluation: Evaluation
    report: dict[str, Any] | None  # None when its object is gone
    tables: list[Table] = field(default_factory=list)
    groups: list[tuple[str, str]] = field(default_factory=list)  # (heading, table id)
    # (sensitive column, its disparities as (name, value) pairs, groups' table id)
    fairness: list[tuple[str, list[tuple[str, str]], str]] = field(default_factory=list)
    cv: list[tuple[str, str]] = field(default_factory=list)  # (metric, mean ± std)
    slices: list[tuple[str, str]] = field(default_factory=list)  # (column, table id)


def report_view(project: Project, evaluation: Evaluation) -> ReportView:
    """The tables of one stored report: metrics with intervals, checks by kind,
    fairness per sensitive feature and group, slices."""
    try:
        report = json.loads(project.objects.get_bytes(evaluation.report))
    except (NotFoundError, ValueError):
        return ReportView(evaluation, None)
    view = ReportView(evaluation, report)
    baseline = report.get("baseline_metrics") or {}
    view.tables.append(Table("metrics", [
        Column("metric", "Metric"), Column("value", "Value", "num"),
        Column("low", "95% low", "num"), Column("high", "95% high", "num"),
        Column("baseline", "Baseline", "num")],
        [{"metric": k, "value": v.get("value"), "low": v.get("low"), "high": v.get("high"),
          "baseline": baseline.get(k)} for k, v in (report.get("metrics") or {}).items()
         if isinstance(v, dict)], empty="No metrics recorded."))
    checks = report.get("checks") or []
    for index, heading in enumerate(CHECK_GROUPS):
        rows = [{"status": Markup('<span class="badge badge-{0}">{0}</span>').format(
                    c.get("status", "")), "name": c.get("name"), "value": c.get("value"),
                 "threshold": c.get("threshold"), "severity": c.get("severity"),
                 "explanation": c.get("explanation")}
                for c in checks if check_group(str(c.get("name", ""))) == heading]
        if rows:
            table_id = f"checks-{index}"
            view.tables.append(Table(table_id, [
                Column("status", "Result", "html"), Column("name", "Check"),
                Column("value", "Value", "num"), Column("threshold", "Threshold"),
                Column("severity", "Severity"), Column("explanation", "Why")], rows))
            view.groups.append((heading, table_id))
    for index, (column, fair) in enumerate((report.get("fairness") or {}).items()):
        table_id = f"fairness-{index}"
        view.tables.append(Table(table_id, [
            Column("group", "Group"), Column("size", "Rows", "num"),
            Column("selection_rate", "Selection rate", "num"), Column("tpr", "TPR", "num"),
            Column("fpr", "FPR", "num"), Column("accuracy", "Accuracy", "num")],
            [{"group": g, **values} for g, values in (fair.get("groups") or {}).items()]))
        summary = [(k, number(x)) for k, x in (fair.get("summary") or {}).items()]
        if fair.get("undefined"):
            summary.append(("undefined in", ", ".join(map(str, fair["undefined"]))))
        view.fairness.append((column, summary, table_id))
    for index, (column, groups) in enumerate((report.get("slices") or {}).items()):
        names = sorted({m for values in groups.values() for m in values})
        table_id = f"slice-{index}"
        view.tables.append(Table(table_id, [Column("group", "Group")] + [
            Column(f"m{i}", n, "num") for i, n in enumerate(names)],
            [{"group": g, **{f"m{i}": values.get(n) for i, n in enumerate(names)}}
             for g, values in groups.items()]))
        view.slices.append((column, table_id))
    for metric, values in (report.get("cv") or {}).items():
        text = " ± ".join(number(values.get(k)) for k in ("mean", "std") if k in values) \
            if isinstance(values, dict) else number(values)
        view.cv.append((metric, text))
    return view


def signature_table(manifest: dict[str, Any]) -> Table | None:
    """The model's input columns (a table signature) as a table; None for none or a
    tensor."""
    sig = manifest.get("signature") or {}
    if sig.get("kind") != "table":
        return None
    return Table("signature", [Column("name", "Input column"), Column("dtype", "Type")],
                 [{"name": c.get("name"), "dtype": c.get("dtype")}
                  for c in sig.get("columns", [])])


def export_table(version: ModelVersion, manifest: dict[str, Any],
                 serializer: str | None, runs_code: bool) -> Table:
    """What this version can be exported or served as, with the command for each."""
    ref = f"{version.name}/{version.version}"
    onnx = manifest.get("onnx") or (manifest.get("flavor") == "onnx")
    package_ok = serializer in ("skops", "onnx") or runs_code
    rows = [
        {"export": "ONNX file", "available": "yes" if onnx else
         f"no ({manifest.get('onnx_note') or 'not a scikit-learn or ONNX model'})",
         "command": f"mloop models export {ref} --format onnx -o {version.name}"
                    f"-v{version.version}.onnx"},
        {"export": "Python package", "available": ("yes, with --allow-pickle (it runs code "
                                                   "when loaded)" if runs_code else "yes")
         if package_ok else f"no (stored as {serializer or 'unknown'})",
         "command": f"mloop models export {ref} --format package -o {version.name}-model"
                    + (" --allow-pickle" if runs_code else "")},
        {"export": "Model card", "available": "yes",
         "command": f"mloop models card {ref} --format hf -o README.md"},
        {"export": "Online service", "available": "yes", "command": f"mloop serve {ref}"},
    ]
    return Table("exports", [Column("export", "Export"), Column("available", "Available"),
                             Column("command", "Command")], rows)


def card_sections(card: Any) -> list[tuple[str, Markup]]:
    """(title, HTML) of each section of a model card, as the card module renders it
    (its Markdown subset, every piece of text escaped)."""
    from mloop.registry.card import SECTIONS
    from mloop.registry.card import markdown_html as md_to_html  # the card's own renderer

    out = []
    for key, title in SECTIONS:
        text = card.sections.get(key, "").strip()
        out.append((title, Markup(md_to_html(text)) if text else  # escaped by it
                    Markup("<p class=\"muted\">Not yet documented.</p>")))
    return out
