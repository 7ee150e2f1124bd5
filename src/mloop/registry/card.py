"""Model cards (Mitchell et al., 2019), filled from what the store knows.

The nine sections of the paper. mloop fills model details, metrics, evaluation data,
training data and the quantitative analyses from the registry, the evaluations recorded
for the version (``mloop test`` / ``mloop.evaluate``: the newest per evaluation data, with
its metrics, intervals and date), the source run (params, metrics, environment, git
commit) and the dataset versions the run read (with their statistics);
the user supplies what only people know (intended use, factors, evaluation data, ethical
considerations, caveats) in a YAML file:

.. code-block:: yaml

    intended_use: Rank customers by churn risk for the retention team.
    factors: Results are reported per region and customer tenure.
    evaluation_data: The March holdout (data:/churn-test@3).
    ethical_considerations: Not used for pricing decisions.
    caveats_and_recommendations: Retrain when the plan catalogue changes.
    license: apache-2.0

Rendered as Markdown, HTML, or a Hugging Face card (YAML front matter with
``model-index``: one result per evaluation, then the source run's metrics on its training
data); :meth:`ModelCard.missing` lists what is still empty.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from mloop import lineage
from mloop.core.clock import format_ms, ms_to_datetime
from mloop.core.schema import Schema, Strings, validate
from mloop.errors import InvalidInputError, NotFoundError
from mloop.project import Project
from mloop.registry.models import ModelVersion, get_version
from mloop.registry.safety import storage

SECTIONS = (
    ("model_details", "Model details"),
    ("intended_use", "Intended use"),
    ("factors", "Factors"),
    ("metrics", "Metrics"),
    ("evaluation_data", "Evaluation data"),
    ("training_data", "Training data"),
    ("quantitative_analyses", "Quantitative analyses"),
    ("ethical_considerations", "Ethical considerations"),
    ("caveats_and_recommendations", "Caveats and recommendations"),
)
FORMATS = ("md", "html", "hf")


@dataclass(frozen=True)
class CardEvaluation:
    """One recorded evaluation of the version: the newest on its evaluation data."""

    data: str  # data:/holdout@1, a file path, or "a DataFrame of N rows"
    task: str
    rows: int
    metrics: dict[str, dict[str, float]]  # name -> value (and low, high: the 95% interval)
    created_at: int
    suite: str
    passed: bool
    overlap: float | None = None  # share of its rows also in the training data, if measured

    @property
    def when(self) -> str:
        return f"{format_ms(self.created_at)} UTC"

    def hf_dataset(self) -> dict[str, Any]:
        """The Hugging Face ``dataset`` entry: a dataset version names itself and its
        number (``name: holdout@1``, ``type: holdout``, ``revision: "1"``)."""
        if self.data.startswith("data:/") and "@" in self.data:
            name, version = self.data[len("data:/"):].rsplit("@", 1)
            entry: dict[str, Any] = {"name": f"{name}@{version}", "type": name,
                                     "revision": version}
        else:
            entry = {"name": self.data, "type": "tabular"}
        stamp = ms_to_datetime(self.created_at)
        entry["args"] = {"evaluated_at": stamp.strftime("%Y-%m-%dT%H:%M:%SZ") if stamp
                         else None, "rows": self.rows}
        return entry


@dataclass
class ModelCard:
    version: ModelVersion
    sections: dict[str, str]  # key -> Markdown text ("" when empty)
    metrics: dict[str, float] = field(default_factory=dict)  # the source run's
    datasets: list[str] = field(default_factory=list)
    license: str | None = None
    evaluations: list[CardEvaluation] = field(default_factory=list)  # newest first

    def missing(self) -> list[str]:
        return [title for key, title in SECTIONS if not self.sections.get(key, "").strip()]


def _text(description: str) -> Any:
    return Field(None, description=description)


class CardSpec(Schema):
    """The card's sections only people can write (``mloop models card --spec``); Markdown."""

    description: str | None = _text("a paragraph above the model details")
    model_details: str | None = _text("replaces the generated model details")
    intended_use: str | None = _text("what the model is for, and for whom")
    factors: str | None = _text("groups, instruments or environments results depend on")
    metrics: str | None = _text("replaces the generated metrics section")
    evaluation_data: str | None = _text("the data it was evaluated on")
    training_data: str | None = _text("replaces the generated training data section")
    quantitative_analyses: str | None = _text("replaces the generated analyses")
    ethical_considerations: str | None = _text("risks, sensitive uses, mitigations")
    caveats_and_recommendations: str | None = _text("known limits, when to retrain")
    license: str | None = _text("an SPDX identifier (apache-2.0), put in the Hugging Face "
                                "card's front matter")
    authors: Strings | None = _text("who built it")


def load_spec(path: str | Path | None) -> dict[str, Any]:
    """The user's card fields from a YAML file (an empty dict for ``None``); a
    :class:`ConfigError` names an unknown field with the closest one."""
    if path is None:
        return {}
    from mloop.core.yamlio import load_yaml

    data = load_yaml(path)
    spec = validate(CardSpec, {} if data is None else data, source=path)
    return {k: v.strip() if isinstance(v, str) else v
            for k, v in spec.model_dump(exclude_none=True).items()}


def _table(rows: list[tuple[str, str]], head: tuple[str, str]) -> str:
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def evaluations(project: Project, version: ModelVersion) -> list[CardEvaluation]:
    """The version's recorded evaluations, the newest per evaluation data, newest first."""
    import json

    from mloop.repositories import backend

    uris = [version.uri] + ([f"runs:/{version.run_id}/{version.artifact_path}"]
                            if version.run_id else [])
    out: list[CardEvaluation] = []
    seen: set[str] = set()
    for row in backend(project).evaluations.of_models(uris):
        if row.data in seen:
            continue
        seen.add(row.data)
        try:
            report = json.loads(project.objects.get_bytes(row.report))
        except (NotFoundError, ValueError):  # a report whose object is gone: skip it
            continue
        overlap = next((c.get("value") for c in report.get("checks", [])
                        if c.get("name") == "data: train/test overlap"), None)
        out.append(CardEvaluation(
            row.data, str(report.get("task", "")), int(report.get("rows") or 0),
            {k: v for k, v in (report.get("metrics") or {}).items()
             if isinstance(v, dict) and isinstance(v.get("value"), (int, float))},
            row.created_at, row.suite, row.passed,
            float(overlap) if isinstance(overlap, (int, float)) else None))
    return out


def _evaluation_data(evals: list[CardEvaluation]) -> str:
    lines = []
    for e in evals:
        note = (f"; {e.overlap:.0%} of its rows are also in the training data"
                if e.overlap else "")
        lines.append(f"- `{e.data}`: {e.rows:,} rows, evaluated {e.when} (suite `{e.suite}`: "
                     f"{'passed' if e.passed else 'failed'}){note}")
    return "\n".join(lines)


def _analyses(evals: list[CardEvaluation], metrics: dict[str, float]) -> str:
    parts = []
    for e in evals:
        rows = [(k, _fmt(v["value"]), f"{_fmt(v['low'])} to {_fmt(v['high'])}"
                 if "low" in v and "high" in v else "-") for k, v in sorted(e.metrics.items())]
        parts.append(f"**On `{e.data}`** ({e.rows:,} rows, evaluated {e.when})\n\n"
                     + _table3(rows, ("metric", "value", "95% interval")))
    if metrics:
        parts.append(("**Logged by the source run**\n\n" if evals else "") + _table(
            [(k, _fmt(v)) for k, v in sorted(metrics.items())], ("metric", "value")))
    return "\n\n".join(parts)


def _metrics_text(evals: list[CardEvaluation], metrics: dict[str, float]) -> str:
    lines = [f"Measured on `{e.data}` ({e.when}): {', '.join(sorted(e.metrics))}"
             for e in evals if e.metrics]
    if metrics:
        lines.append("Metrics logged by the source run: " + ", ".join(sorted(metrics)))
    return "\n\n".join(lines)


def _table3(rows: list[tuple[str, str, str]], head: tuple[str, str, str]) -> str:
    lines = [f"| {' | '.join(head)} |", "|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    return "\n".join(lines)


def build(project: Project, ref: str, spec: dict[str, Any] | None = None) -> ModelCard:
    """Gather a card for a registered version; ``spec`` holds the user's fields."""
    from mloop.data.catalog import get as get_data
    from mloop.data.summary import ensure as ensure_summary
    from mloop.tracking.records import get_run

    spec = dict(spec or {})
    version = get_version(project, ref)
    run = get_run(project, version.run_id) if version.run_id else None
    manifest = json.loads(project.objects.get_bytes(version.manifest))
    stored = (storage(project, version.run_id, version.artifact_path, manifest).text
              if version.run_id else "-")
    details = [("Name", version.name), ("Version", str(version.version)),
               ("Status", version.status), ("Aliases", ", ".join(version.aliases) or "-"),
               ("Flavor", version.flavor), ("Class", f"`{manifest.get('model_class', '?')}`"),
               ("Serializer", stored),
               ("Registered", f"{format_ms(version.created_at)} UTC by {version.user or '?'}"),
               ("Python", manifest.get("python", "?")),
               ("ONNX form", "yes" if manifest.get("onnx") else "no")]
    if run is not None:
        details += [("Source run", f"`runs:/{run.id}` ({run.experiment} / {run.name})"),
                    ("Git commit", run.git_commit or "-")]
    if manifest.get("signature"):
        from mloop.registry.signature import Signature

        details.append(("Input", str(Signature.from_dict(manifest["signature"]))))
    text = _table(details, ("", ""))
    if spec.get("description") or version.description:
        text = f"{spec.get('description') or version.description}\n\n{text}"
    if run is not None and run.params:
        text += "\n\n**Training parameters**\n\n" + _table(
            sorted((k, f"`{v}`") for k, v in run.params.items()), ("param", "value"))
    metrics = dict(run.metrics) if run is not None else {}
    upstream, _ = lineage.neighbours(project, f"runs:/{run.id}") if run else ([], [])
    datasets = [e.src for e in upstream if e.src.startswith("data:/")]
    data_parts = []
    for uri in datasets:
        try:
            dv = ensure_summary(project, get_data(project, uri))
        except NotFoundError:
            continue
        cols = ", ".join(list((dv.stats or {}).get("columns", {}))[:12])
        data_parts.append(f"- `{uri}`: {dv.rows if dv.rows is not None else '?'} rows, "
                          f"{dv.files} file(s), {dv.size:,} bytes" + (f"; columns {cols}"
                                                                       if cols else ""))
    evals = evaluations(project, version)
    sections = {
        "model_details": text,
        "intended_use": spec.get("intended_use", ""),
        "factors": spec.get("factors", ""),
        "metrics": spec.get("metrics") or _metrics_text(evals, metrics),
        "evaluation_data": spec.get("evaluation_data") or _evaluation_data(evals),
        "training_data": spec.get("training_data") or "\n".join(data_parts),
        "quantitative_analyses": spec.get("quantitative_analyses") or _analyses(evals, metrics),
        "ethical_considerations": spec.get("ethical_considerations", ""),
        "caveats_and_recommendations": spec.get("caveats_and_recommendations", ""),
    }
    return ModelCard(version, sections, metrics, datasets, spec.get("license"), evals)


def to_markdown(card: ModelCard) -> str:
    out = [f"# Model card: {card.version.name} v{card.version.version}", ""]
    for key, title in SECTIONS:
        body = card.sections.get(key, "").strip()
        out += [f"## {title}", "", body or "_Not yet documented._", ""]
    return "\n".join(out)


def to_hf(card: ModelCard) -> str:
    """A Hugging Face model card: YAML front matter (with ``model-index``) + Markdown."""
    import yaml

    front: dict[str, Any] = {"library_name": card.version.flavor, "tags": ["mloop"]}
    if card.license:
        front["license"] = card.license
    results = [{"task": {"type": _HF_TASKS.get(e.task, "other")}, "dataset": e.hf_dataset(),
                "metrics": [{"type": k, "value": float(v["value"]), "name": k}
                            for k, v in sorted(e.metrics.items()) if math.isfinite(v["value"])]}
               for e in card.evaluations]
    run_metrics = {k: float(v) for k, v in sorted(card.metrics.items()) if math.isfinite(v)}
    if run_metrics:
        task = (card.evaluations[0].task if card.evaluations else
                "classification" if card.version.flavor in ("sklearn", "onnx") else "")
        results.append({
            "task": {"type": _HF_TASKS.get(task, "other")},
            "dataset": {"name": card.datasets[0][len("data:/"):] if card.datasets
                        else "unspecified", "type": "tabular"},
            "metrics": [{"type": k, "value": v, "name": k} for k, v in run_metrics.items()]})
    if results:
        front["model-index"] = [{"name": card.version.name, "results": results}]
    return f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n\n{to_markdown(card)}"


_HF_TASKS = {"classification": "tabular-classification", "regression": "tabular-regression"}


def to_html(card: ModelCard) -> str:
    """A standalone HTML page (no scripts, everything escaped)."""
    body = []
    for key, title in SECTIONS:
        text = card.sections.get(key, "").strip()
        body.append(f"<h2>{html.escape(title)}</h2>")
        body.append(markdown_html(text) if text else "<p><em>Not yet documented.</em></p>")
    title = html.escape(f"Model card: {card.version.name} v{card.version.version}")
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{title}</title><style>body{{font-family:sans-serif;max-width:60em;"
            "margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:.2em .6em}</style></head><body>"
            f"<h1>{title}</h1>{''.join(body)}</body></html>")


def markdown_html(text: str) -> str:
    """The Markdown this module writes (tables, bullets, paragraphs), as HTML."""
    out: list[str] = []
    rows: list[list[str]] = []
    items: list[str] = []

    def cell(s: str) -> str:
        s = html.escape(s.strip())
        parts = s.split("`")
        s = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
        bold = s.split("**")  # **On `data:/holdout@1`** (…): paired markers only
        if len(bold) % 2 == 0:
            return s
        return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(bold))

    def close() -> None:
        if rows:
            out.append("<table>" + "".join(
                "<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in rows)
                + "</table>")
            rows.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{cell(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|"):
            if set(stripped) <= {"|", "-"}:
                continue
            rows.append(stripped.strip("|").split("|"))
        elif stripped.startswith("- "):
            items.append(stripped[2:])
        else:
            close()
            if stripped:
                out.append(f"<p>{cell(stripped)}</p>")
    close()
    return "".join(out)


def render(card: ModelCard, fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidInputError(f"Unknown card format {fmt!r}; use {', '.join(FORMATS)}.")
    return {"md": to_markdown, "html": to_html, "hf": to_hf}[fmt](card)
