"""Property: for any filter built from the grammar, search returns exactly the runs a
plain-Python evaluation of the same filter selects (SQLite store)."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mloop
from mloop.project import Project

N_RUNS = 60
NUMBERS = [-1.0, 0.0, 0.5, 1.0, 2.5, 10.0]
WORDS = ["alpha", "beta", "alps", "gamma"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    project = Project.init(tmp_path_factory.mktemp("corpus"))
    rng = random.Random(7)
    truth = {}
    for _ in range(N_RUNS):
        metrics = {k: rng.choice(NUMBERS) for k in ("a", "b") if rng.random() < 0.8}
        params = {"p": rng.choice(WORDS)} if rng.random() < 0.8 else {}
        tags = {"t": rng.choice(WORDS)} if rng.random() < 0.5 else {}
        with mloop.start_run(experiment="prop", project=project, tags=tags) as run:
            run.log_params(params)
            run.log_metrics(metrics)
        truth[run.id] = {"metrics": metrics, "params": params, "tags": tags}
    yield project, truth
    project.close()


def _cmp(value, op, target):
    return {"=": value == target, "!=": value != target, "<": value < target,
            "<=": value <= target, ">": value > target, ">=": value >= target}[op]


numeric = st.tuples(st.just("metrics"), st.sampled_from(["a", "b"]),
                    st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), st.sampled_from(NUMBERS))
textual = st.tuples(st.sampled_from(["params", "tags"]), st.just("p"),
                    st.sampled_from(["=", "!=", "in", "not in", "like"]),
                    st.sampled_from(WORDS))


def _render(atom):
    entity, key, op, value = atom
    key = "t" if entity == "tags" else key
    if entity == "metrics":
        return f"{entity}.{key} {op} {value}", (entity, key, op, value)
    if op in ("in", "not in"):
        return f"{entity}.{key} {op.upper()} ('{value}', 'gamma')", (entity, key, op, value)
    if op == "like":
        return f"{entity}.{key} LIKE '{value[:2]}%'", (entity, key, op, value[:2])
    return f"{entity}.{key} {op} '{value}'", (entity, key, op, value)


def _holds(run, atom):
    entity, key, op, value = atom
    if key not in run[entity]:
        return False  # a comparison on an absent key never matches, as in SQL
    have = run[entity][key]
    if op == "in":
        return have in (value, "gamma")
    if op == "not in":
        return have not in (value, "gamma")
    if op == "like":
        return have.startswith(value)
    return _cmp(have, op, value)


trees = st.recursive(
    st.one_of(numeric, textual).map(lambda a: ("atom", a)),
    lambda kids: st.tuples(st.sampled_from(["and", "or"]), st.lists(kids, min_size=2,
                                                                   max_size=3)),
    max_leaves=5,
)


def _compile(tree):
    if tree[0] == "atom":
        text, atom = _render(tree[1])
        return text, lambda run: _holds(run, atom)
    op, kids = tree
    parts = [_compile(k) for k in kids]
    text = f" {op} ".join(f"({t})" for t, _ in parts)
    preds = [p for _, p in parts]
    if op == "and":
        return text, lambda run: all(p(run) for p in preds)
    return text, lambda run: any(p(run) for p in preds)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees)
def test_search_agrees_with_python(corpus, tree):
    project, truth = corpus
    text, predicate = _compile(tree)
    found = set(mloop.search_runs(experiment="prop", filter=text, max_results=None,
                                  project=project)["run_id"])
    expected = {rid for rid, run in truth.items() if predicate(run)}
    assert found == expected, text


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["a", "b"]), descending=st.booleans(),
       then=st.sampled_from([None, "metrics.b", "params.p DESC", "attributes.start_time"]),
       filt=st.sampled_from([None, "params.p != 'beta'", "metrics.b > 0.0", "tags.t = 'alps'"]),
       size=st.integers(1, 70), offset=st.integers(0, 70))
def test_a_page_ordered_by_a_metric_is_the_page_of_the_whole_ordering(
        corpus, key, descending, then, filt, size, offset):
    """Ordered first by a metric, a page is read in two parts (runs with the metric, then
    the others): the same runs, in the same order, as one sort of every run."""
    from mloop.repositories.run_search import build_query, search
    from mloop.repositories.runs import SearchQuery
    from mloop.tracking.filter import parse_filter, parse_order_by

    project, _ = corpus
    order = [f"metrics.{key}{' DESC' if descending else ''}"] + ([then] if then else [])
    query = SearchQuery(filter=parse_filter(filt) if filt else None,
                        order=tuple(parse_order_by(order)), max_results=size, offset=offset)
    got = [r[0] for r in search(project.store, query).rows]
    whole = build_query(query.filter, query.order, None, False)
    with project.store.read() as conn:
        every = [r[0] for r in conn.execute(whole, {"limit": 10**9, "offset": 0}).all()]
    assert got == every[offset:offset + size]
