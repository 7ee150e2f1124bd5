"""Model cards (Mitchell et al., 2019), filled from what the store knows.

The nine sections of the paper. mloop fills model details, metrics, training data and
the quantitative analyses from the registry, the source run (params, metrics,
environment, git commit) and the dataset versions the run read (with their statistics);
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
``model-index``); :func:`missing_sections` lists what is still empty.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from mloop import lineage
from mloop.core.clock import format_ms
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


@dataclass
class ModelCard:
    version: ModelVersion
    sections: dict[str, str]  # key -> Markdown text ("" when empty)
    metrics: dict[str, float] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    license: str | None = None

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
    sections = {
        "model_details": text,
        "intended_use": spec.get("intended_use", ""),
        "factors": spec.get("factors", ""),
        "metrics": spec.get("metrics") or (
            "Metrics logged by the source run: " + ", ".join(sorted(metrics))
            if metrics else ""),
        "evaluation_data": spec.get("evaluation_data", ""),
        "training_data": spec.get("training_data") or "\n".join(data_parts),
        "quantitative_analyses": spec.get("quantitative_analyses") or (
            _table([(k, _fmt(v)) for k, v in sorted(metrics.items())], ("metric", "value"))
            if metrics else ""),
        "ethical_considerations": spec.get("ethical_considerations", ""),
        "caveats_and_recommendations": spec.get("caveats_and_recommendations", ""),
    }
    return ModelCard(version, sections, metrics, datasets, spec.get("license"))


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
    if card.metrics:
        front["model-index"] = [{"name": card.version.name, "results": [{
            "task": {"type": "tabular-classification"
                     if card.version.flavor in ("sklearn", "onnx") else "other"},
            "dataset": {"name": card.datasets[0] if card.datasets else "unspecified",
                        "type": "tabular"},
            "metrics": [{"type": k, "value": float(v), "name": k}
                        for k, v in sorted(card.metrics.items())]}]}]
    return f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n\n{to_markdown(card)}"


def to_html(card: ModelCard) -> str:
    """A standalone HTML page (no scripts, everything escaped)."""
    body = []
    for key, title in SECTIONS:
        text = card.sections.get(key, "").strip()
        body.append(f"<h2>{html.escape(title)}</h2>")
        body.append(_md_to_html(text) if text else "<p><em>Not yet documented.</em></p>")
    title = html.escape(f"Model card: {card.version.name} v{card.version.version}")
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{title}</title><style>body{{font-family:sans-serif;max-width:60em;"
            "margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:.2em .6em}</style></head><body>"
            f"<h1>{title}</h1>{''.join(body)}</body></html>")


def _md_to_html(text: str) -> str:
    """The Markdown this module writes (tables, bullets, paragraphs), as HTML."""
    out: list[str] = []
    rows: list[list[str]] = []
    items: list[str] = []

    def cell(s: str) -> str:
        s = html.escape(s.strip())
        parts = s.split("`")
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

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
                out.append(f"<p>{cell(stripped.strip('*'))}</p>")
    close()
    return "".join(out)


def render(card: ModelCard, fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidInputError(f"Unknown card format {fmt!r}; use {', '.join(FORMATS)}.")
    return {"md": to_markdown, "html": to_html, "hf": to_hf}[fmt](card)
