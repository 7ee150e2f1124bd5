"""How lineage edges read (issue 14 §5): phrases, not "(produced of …)"; short ids."""

from hypothesis import given
from hypothesis import strategies as st

from mloop.lineage import PHRASES, Edge, describe, short_uri

RUN = "01a24ff9cf887000abee4f50a6425847"


def test_ids_are_cut_to_what_tables_show_and_names_are_not():
    assert short_uri(f"runs:/{RUN}") == "runs:/4f50a6425847"
    assert short_uri(f"runs:/{RUN}/model") == f"runs:/{RUN[-12:]}/model"
    assert short_uri(f"pipelines:/train/{RUN}") == f"pipelines:/train/{RUN[-12:]}"
    assert short_uri(f"alerts:/{RUN}") == f"alerts:/{RUN[-12:]}"
    # a dataset, a model or a pipeline may be named with 32 hex digits: left whole
    assert short_uri(f"data:/{RUN}@1") == f"data:/{RUN}@1"
    assert short_uri(f"models:/{RUN}/1") == f"models:/{RUN}/1"
    assert short_uri(f"pipelines:/{RUN}/{RUN}") == f"pipelines:/{RUN}/{RUN[-12:]}"
    assert short_uri("runs:/abc") == "runs:/abc"


@given(st.text(max_size=40))
def test_short_uri_never_changes_a_name(name):
    for uri in (f"data:/{name}@1", f"models:/{name}/2", name):
        assert short_uri(uri) == uri


def test_every_relation_reads_as_a_phrase_both_ways():
    edge = Edge(f"runs:/{RUN}", "models:/churn/3", "produced", 0)
    assert describe(edge, upstream=True) == f"runs:/{RUN[-12:]}  (produced models:/churn/3)"
    assert describe(edge, upstream=False) == f"models:/churn/3  (produced by runs:/{RUN[-12:]})"
    feeds = Edge(f"runs:/{RUN}", "runs:/ffffffffffffffffffffffffffffffff", "feeds", 0)
    assert describe(feeds, upstream=False) == f"runs:/{'f' * 12}  (fed by runs:/{RUN[-12:]})"
    # every relation mloop writes has its own wording
    written = {"input", "output", "produced", "feeds", "step", "cached", "triggered", "alert",
               "serves"}
    assert written <= set(PHRASES)
    assert describe(Edge("a", "b", "custom", 0), upstream=False) == "b  (custom of a)"


def test_a_deployment_reads_downstream_of_the_model_it_serves():
    serves = Edge("deployments:/churn/2", "models:/churn/4", "serves", 0)
    # downstream of the model, the far node is the deployment; upstream of it, the model
    assert describe(serves, upstream=False) == "deployments:/churn/2  (serves models:/churn/4)"
    assert describe(serves, upstream=True) == "models:/churn/4  (served by deployments:/churn/2)"


def test_which_live_traffic_a_dataset_version_reached(sqlite_project):
    from mloop import lineage, repositories
    from mloop.repositories.traffic import Outcome, TrafficRow

    project = sqlite_project
    run = f"runs:/{RUN}"
    for src, dst, relation in (("data:/train@3", run, "input"),
                               (run, "models:/churn/4", "produced"),
                               ("deployments:/live/2", "models:/churn/4", "serves"),
                               ("deployments:/live/2", "models:/churn/3", "serves")):
        lineage.add_edge(project, src, dst, relation)
    rows = [TrafficRow(f"r{i}", 0, "canary" if i < 3 else "stable", "live", 2,
                       "models:/churn/4" if i < 3 else "models:/churn/3", Outcome.OK, 1, 1.0,
                       1_000 + i) for i in range(10)]
    rows.append(TrafficRow("r0", 0, "x", "live", 2, "models:/churn/4", Outcome.SHADOW, 1,
                           1.0, 5))
    repositories.backend(project).traffic.record(rows)
    _, downstream = lineage.trace(project, "data:/train@3", depth=4)
    assert ("deployments:/live/2", "models:/churn/4") in {(e.src, e.dst) for _, e in downstream}
    reached = lineage.live_traffic(project, "data:/train@3")
    assert [(t.deployment, t.revision, t.model, t.rows, t.first_ms, t.last_ms)
            for t in reached] == [("live", 2, "models:/churn/4", 3, 1_000, 1_002)]
    # the other model of the revision was not trained on it
    assert lineage.live_traffic(project, "models:/churn/3")[0].rows == 7
