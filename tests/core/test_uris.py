import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.core.uris import DataURI, ModelURI, PipelineURI, RunURI, parse_uri
from mloop.errors import InvalidURIError, UnsafePathError

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,30}", fullmatch=True)


def test_examples():
    rid = "0" * 32
    assert parse_uri(f"runs:/{rid}/model/model.pkl") == RunURI(rid, "model/model.pkl")
    assert parse_uri(f"runs:/{rid}") == RunURI(rid, "")
    assert parse_uri("models:/churn/3") == ModelURI("churn", version=3)
    assert parse_uri("models:/churn@champion") == ModelURI("churn", alias="champion")
    assert parse_uri("data:/train@2") == DataURI("train", "2")
    assert parse_uri("data:/train") == DataURI("train", None)
    assert parse_uri(f"pipelines:/p/{rid}") == PipelineURI("p", rid)


@given(names, st.integers(min_value=1, max_value=10**6))
def test_model_uri_round_trip(name, version):
    uri = ModelURI(name, version=version)
    assert parse_uri(str(uri)) == uri


@given(names, names)
def test_alias_and_data_round_trip(name, ref):
    assert parse_uri(str(ModelURI(name, alias=ref))) == ModelURI(name, alias=ref)
    assert parse_uri(str(DataURI(name, ref))) == DataURI(name, ref)


@pytest.mark.parametrize("bad", ["churn/1", "models:/churn", "models:/churn/0",
                                 "models:/churn/x", "data:/t@", "ftp:/x", "runs:/zz/x",
                                 "models:/../etc/1", ""])
def test_malformed_uris_explain(bad):
    with pytest.raises(InvalidURIError):
        parse_uri(bad)


def test_run_uri_path_cannot_escape():
    with pytest.raises(UnsafePathError):
        parse_uri("runs:/" + "a" * 32 + "/../../etc/passwd")
