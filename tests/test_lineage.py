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
    written = {"input", "output", "produced", "feeds", "step", "cached", "triggered", "alert"}
    assert written <= set(PHRASES)
    assert describe(Edge("a", "b", "custom", 0), upstream=False) == "b  (custom of a)"
