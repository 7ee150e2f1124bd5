"""The pipeline: steps wired into a graph, checked before anything runs.

Wiring, for every input of every step: a pipeline input of that name (``raw=…``); else
the output of that name; else, for an input annotated with one of mloop's markers
(``mloop.Dataset``, ``mloop.Model``, ``mloop.Report``) only, the one output of another
step annotated with that marker. Nothing else is wired by type: two ``int`` or two
DataFrames say nothing about which value is meant, and a guess that binds the wrong one
runs silently. An input with a default that nothing provides takes its default.
Checked up front, with errors that name the steps: an input nothing provides (with the
inputs and outputs that would, the closest name first), two producers of one name or of
one marker for an input, a type that does not match, a cycle.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mloop.core.uris import check_name
from mloop.errors import InvalidInputError
from mloop.pipelines.step import Dataset, Model, Report, Step, make_step

MARKERS = (Dataset, Model, Report)  # the only types inputs are wired by


@dataclass(frozen=True)
class Edge:
    """``src`` step's output ``output`` feeds ``dst`` step's input ``input``."""

    src: str
    output: str
    dst: str
    input: str


class Pipeline:
    """Named steps, wired by their signatures; ``run`` executes them, cached."""

    def __init__(self, name: str, steps: Iterable[Step | Callable[..., Any]],
                 *, description: str | None = None) -> None:
        self.name = check_name(name, "pipeline name")
        self.steps: dict[str, Step] = {}
        for s in steps:
            made = make_step(s)
            if made.name in self.steps:
                raise InvalidInputError(f"Pipeline {name!r} has two steps named {made.name!r}.")
            self.steps[made.name] = made
        if not self.steps:
            raise InvalidInputError(f"Pipeline {name!r} has no steps.")
        self.description = description
        self.producers: dict[str, str] = {}
        for s in self.steps.values():
            for out in s.outputs:
                if out in self.producers:
                    raise InvalidInputError(
                        f"Steps {self.producers[out]!r} and {s.name!r} both produce {out!r}; "
                        "give one of them another name with @mloop.step(outputs=…).")
                self.producers[out] = s.name

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, steps={list(self.steps)})"

    # -- wiring ------------------------------------------------------------------------------

    def wire(self, given: Iterable[str] = (), *, strict: bool = True
             ) -> tuple[list[Edge], dict[str, dict[str, str]]]:
        """(edges between steps, per step: input name -> pipeline input it takes).

        ``strict=False`` takes every input that nothing wires as a pipeline input (what
        :meth:`external_inputs` lists) instead of failing.
        """
        given = set(given)
        edges: list[Edge] = []
        external: dict[str, dict[str, str]] = {}
        for s in self.steps.values():
            for name, annotation in s.inputs.items():
                if name in given:
                    external.setdefault(s.name, {})[name] = name
                    continue
                producer = self.producers.get(name)
                if producer is not None:
                    _check_types(self.steps[producer], name, s, name, annotation)
                    edges.append(Edge(producer, name, s.name, name))
                    continue
                matches = self._by_marker(s, annotation)
                if len(matches) == 1:
                    edges.append(Edge(matches[0][0], matches[0][1], s.name, name))
                    continue
                if len(matches) > 1:
                    raise InvalidInputError(
                        f"Step {s.name!r}: input {name!r} ({annotation.__name__}) could come "
                        f"from {_listed(f'{p}.{out}' for p, out in matches)}: mloop does not "
                        f"guess. Name the input after the output it wants (e.g. "
                        f"{matches[0][1]!r}).")
                if _optional(s, name):
                    continue  # the function's default
                if not strict:
                    external.setdefault(s.name, {})[name] = name
                    continue
                raise self._unwired(s, name, annotation, given)
        if strict:
            self.order(edges)  # cycles fail here
        return edges, external

    def _by_marker(self, s: Step, annotation: Any) -> list[tuple[str, str]]:
        """(step, output) pairs that could feed an input of a marker type: every output of
        another step annotated with that same marker. Other types never wire by type."""
        if annotation not in MARKERS:
            return []
        return [(p, out) for out, p in self.producers.items()
                if p != s.name and self.steps[p].output_type(out) is annotation]

    def _unwired(self, s: Step, name: str, annotation: Any,
                 given: set[str]) -> InvalidInputError:
        """The error for an input nothing provides: what would, and the closest name."""
        import difflib

        if annotation is Dataset:
            return InvalidInputError(
                f"Step {s.name!r} reads the dataset {name!r}: pass it, e.g. "
                f"pipe.run({name}='train@latest') or --input {name}=train@latest.")
        kind = f" ({_type_name(annotation)})" if annotation is not inspect.Parameter.empty \
            else ""
        outputs = [f"{out} (step {p})" for out, p in self.producers.items() if p != s.name]
        names = [n for n in (*given, *self.producers) if self.producers.get(n) != s.name]
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        hint = ""
        if close:
            hint = (f" Did you mean the pipeline input {close[0]!r}?" if close[0] in given
                    else f" Did you mean {close[0]!r}, the output of step "
                         f"{self.producers[close[0]]!r}?")
        return InvalidInputError(
            f"Step {s.name!r}: nothing provides input {name!r}{kind}.{hint} Inputs are wired "
            f"by name (by type only for mloop.Dataset, mloop.Model and mloop.Report): pass "
            f"it (pipe.run({name}=…) or --input {name}=…), or rename the parameter after the "
            f"output it wants. Pipeline inputs given: {_listed(sorted(given))}; step "
            f"outputs: {_listed(outputs)}.")

    def order(self, edges: list[Edge]) -> list[str]:
        """Steps in an order where each comes after what it reads (Kahn); a cycle fails."""
        needs: dict[str, set[str]] = {n: set() for n in self.steps}
        for e in edges:
            needs[e.dst].add(e.src)
        done: list[str] = []
        ready = [n for n in self.steps if not needs[n]]
        while ready:
            n = ready.pop(0)
            done.append(n)
            for m in self.steps:
                if n in needs[m]:
                    needs[m].discard(n)
                    if not needs[m] and m not in done and m not in ready:
                        ready.append(m)
        if len(done) != len(self.steps):
            stuck = sorted(n for n in self.steps if n not in done)
            raise InvalidInputError(f"Pipeline {self.name!r} has a cycle through "
                                    f"{', '.join(stuck)}: each waits for another's output.")
        return done

    def external_inputs(self, given: Iterable[str] = ()) -> dict[str, Any]:
        """Inputs no step provides (what ``run`` must be given; ``given`` are taken as
        such), with their annotations."""
        _, external = self.wire(given, strict=False)
        return {name: self.steps[step].inputs[name]
                for step, names in external.items() for name in names}

    def params(self) -> dict[str, list[str]]:
        """Param name -> the steps that take it."""
        found: dict[str, list[str]] = {}
        for s in self.steps.values():
            for p in s.params:
                found.setdefault(p, []).append(s.name)
        return found

    def downstream(self, start: str, edges: list[Edge]) -> set[str]:
        """``start`` and every step that reads from it, transitively."""
        if start not in self.steps:
            raise InvalidInputError(f"Pipeline {self.name!r} has no step {start!r}; its steps: "
                                    f"{', '.join(self.steps)}.")
        seen = {start}
        frontier = [start]
        while frontier:
            n = frontier.pop()
            for e in edges:
                if e.src == n and e.dst not in seen:
                    seen.add(e.dst)
                    frontier.append(e.dst)
        return seen

    def draw(self, given: Iterable[str] | None = None) -> str:
        """A text drawing of the graph: one line per step, in order, with what feeds it."""
        given = set(self.external_inputs()) if given is None else set(given)
        edges, external = self.wire(given)
        order = self.order(edges)
        level: dict[str, int] = {}
        for n in order:
            level[n] = max((level[e.src] + 1 for e in edges if e.dst == n), default=0)
        lines = [f"pipeline {self.name}"]
        for n in order:
            feeds = [f"{e.src}.{e.output}" + (f"→{e.input}" if e.input != e.output else "")
                     for e in edges if e.dst == n]
            feeds += [f"input {k}" for k in external.get(n, {})]
            s = self.steps[n]
            params = ", ".join(f"{p.name}={p.default!r}" for p in s.params.values())
            indent = "  " * level[n]
            arrow = "└─ " if level[n] else "● "
            lines.append(f"{indent}{arrow}{n}" + (f"({params})" if params else "")
                         + (f"  ← {', '.join(feeds)}" if feeds else "")
                         + (f"  → {', '.join(s.outputs)}" if s.outputs != (n,) else ""))
        parallel = [ns for ns in _by_level(level).values() if len(ns) > 1]
        if parallel:
            lines.append("can run side by side: "
                         + "; ".join(", ".join(sorted(ns)) for ns in parallel))
        return "\n".join(lines)

    def run(self, *, params: Mapping[str, Any] | None = None, executor: str = "local",
            scheduler: str | None = None, force: bool = False, from_step: str | None = None,
            project: Any = None, **inputs: Any) -> Any:
        """Run the steps (unchanged ones are restored from the cache); returns the
        :class:`~mloop.pipelines.engine.PipelineRun`. Inputs by name (``raw="train@3"``),
        ``params`` for the steps' params; ``executor="dask"`` with ``scheduler="tcp://…"``
        (or a local cluster) runs the same steps on Dask."""
        from mloop.pipelines.engine import run_pipeline
        from mloop.project import current_project

        return run_pipeline(project if project is not None else current_project(), self,
                            inputs=inputs, params=dict(params or {}), executor=executor,
                            scheduler=scheduler, force=force, from_step=from_step, quiet=True)


def _by_level(level: dict[str, int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for n, lv in level.items():
        out.setdefault(lv, []).append(n)
    return out


def _listed(items: Iterable[str]) -> str:
    shown = list(items)
    return ", ".join(shown) if shown else "none"


def _type_name(annotation: Any) -> str:
    return str(getattr(annotation, "__name__", annotation))


def _optional(s: Step, name: str) -> bool:
    """Whether the step's function has a default for input ``name`` (then nothing need
    provide it: the default is used)."""
    try:
        parameter = inspect.signature(s.fn).parameters.get(name)
    except (TypeError, ValueError):  # shell stages and builtins: no Python signature
        return False
    return parameter is not None and parameter.default is not inspect.Parameter.empty


def _check_types(producer: Step, output: str, consumer: Step, input_name: str,
                 wanted: Any) -> None:
    produced = producer.output_type(output)
    empty = inspect.Parameter.empty
    if produced is empty or wanted is empty or produced is Any or wanted is Any:
        return
    if not isinstance(produced, type) or not isinstance(wanted, type):
        return  # generics and strings: not checked
    if not (issubclass(produced, wanted) or issubclass(wanted, produced)):
        raise InvalidInputError(
            f"Step {consumer.name!r} takes {input_name!r} as {wanted.__name__}, but step "
            f"{producer.name!r} returns {produced.__name__}.")
