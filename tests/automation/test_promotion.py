"""The promotion policy on real models: better → promoted (registered, aliased), worse →
rejected (not registered), no champion → promoted, a failed suite → rejected; reasons and
lineage."""

import pytest
from sklearn.dummy import DummyClassifier

import mloop
from mloop.automation import history, promote
from mloop.automation.config import parse_policy
from mloop.errors import InvalidInputError, NotFoundError
from tests.automation.conftest import (
    COLUMNS,
    TEST,
    TRAIN,
    FakeRun,
    add_dataset,
    log_model,
    write_yaml,
)

POLICY = {"model": "churn", "data": "test@latest", "target": "target",
          "compare": {"alias": "champion", "metrics": {"roc_auc": {"min_change": 0.0},
                                                       "accuracy": {"min_change": -0.01}}},
          "alias": "challenger"}


@pytest.fixture
def data(proj):
    add_dataset(proj, "test", TEST)
    return proj


def _champion(project, columns):
    version = mloop.register_model(log_model(project, columns), "churn", project=project)
    mloop.set_alias("churn", "champion", version.version, project=project)
    return version


def test_no_champion_the_first_model_is_promoted(data):
    result = promote(log_model(data), POLICY, project=data)
    assert result.decision == "promoted" and result.alias == "challenger"
    assert result.registered == "models:/churn/1" and result.champion is None
    assert result.reasons[0] == ("promoted to challenger: the first churn model (no champion "
                                 "yet) and its suite passed")
    assert mloop.get_model_version("churn@challenger", project=data).version == 1
    # recorded with the version, and as a decision taken by hand
    from mloop.evaluation.core import latest_evaluation

    assert latest_evaluation(data, "models:/churn/1")["data"] == "data:/test@1"
    d = history(project=data)[0]
    assert (d.trigger, d.decision, d.registered) == ("manual", "promoted", "models:/churn/1")


def test_better_than_the_champion_is_promoted(data):
    old = _champion(data, COLUMNS[:1])  # one feature: clearly worse
    result = promote(log_model(data), POLICY, project=data)
    assert result.decision == "promoted", result.reasons
    assert result.champion == old.uri
    assert [c.metric for c in result.comparisons] == ["roc_auc", "accuracy"]
    assert all(c.passed and c.change > 0 for c in result.comparisons)
    assert result.reasons[0].startswith("promoted to challenger: roc_auc +")
    assert f"vs {old.uri}" in result.reasons[0]
    # the champion had no evaluation: it was evaluated now on the same data, and recorded
    assert any("evaluated now on data:/test@1" in r for r in result.reasons)
    assert mloop.get_model_version("churn@challenger", project=data).version == 2
    assert mloop.get_model_version("churn@champion", project=data).version == 1  # kept
    # the next comparison reuses the champion's recorded evaluation
    again = promote(log_model(data, C=0.5), POLICY, project=data)
    assert any("as recorded on data:/test@1" in r for r in again.reasons)


def test_worse_than_the_champion_is_rejected_and_not_registered(data):
    _champion(data, COLUMNS)
    candidate = log_model(data, COLUMNS[:1])
    result = promote(candidate, POLICY, project=data)
    assert result.decision == "rejected" and result.alias is None
    assert result.registered is None and result.model_uri == candidate
    roc = result.comparisons[0]
    assert not roc.passed and roc.change < 0
    assert result.reasons[0].startswith("rejected: roc_auc -")
    assert "(min_change 0)" in result.reasons[0]
    assert any("needs >= +0: not enough" in r for r in result.reasons)
    assert result.reasons[-1] == (f"{candidate} is not registered: the gate decided against "
                                  "it (register it by hand to keep it as a version)")
    assert [v.version for v in mloop.list_model_versions("churn", project=data)] == [1]
    from mloop.evaluation.core import latest_evaluation  # its report, kept with its run

    assert latest_evaluation(data, candidate)["id"] == result.evaluation_id
    with pytest.raises(NotFoundError):
        mloop.get_model_version("churn@challenger", project=data)


def test_a_failing_suite_rejects_even_the_first_model(data):
    with mloop.start_run(project=data):
        dummy = DummyClassifier(strategy="most_frequent").fit(TRAIN[COLUMNS], TRAIN.target)
        uri = mloop.log_model(dummy, input_example=TRAIN[COLUMNS].head(3), onnx=False).uri
    result = promote(uri, POLICY, project=data)
    assert result.decision == "rejected"
    assert result.reasons[0].startswith("rejected: the default suite failed (")
    assert result.registered is None  # a failing gate registers nothing
    with pytest.raises(NotFoundError):
        mloop.get_model_version("churn/1", project=data)


def test_a_suite_file_and_an_error_metric(data):
    (data.root / "strict.yaml").write_text("checks:\n  - metric: accuracy\n    min: 0.999\n")
    policy = {**POLICY, "suite": "strict.yaml"}
    result = promote(log_model(data), policy, project=data)
    assert result.decision == "rejected"
    assert result.reasons[0].startswith("rejected: the strict suite failed (accuracy")
    # a metric the task does not measure cannot pass
    _champion(data, COLUMNS)
    regression = {**POLICY, "compare": {"metrics": {"rmse": {"max_change": 0.0}}}}
    out = promote(log_model(data), regression, project=data)
    assert out.decision == "rejected"
    assert any("rmse: not measured for the new model" in r for r in out.reasons)
    assert out.reasons[0] == "rejected: rmse not measured"


def test_policy_by_pipeline_name_and_pipeline_runs(data):
    write_yaml(data, """
        pipelines:
          churn-training:
            promotion: {model: churn, data: test@latest, target: target, alias: champion}
    """)
    run = FakeRun("0" * 32, "churn-training", models=[log_model(data)])
    result = promote(run, "churn-training", project=data)
    assert result.decision == "promoted" and result.alias == "champion"
    _, out_of = mloop.lineage.neighbours(data, run.uri)
    assert [(e.dst, e.relation) for e in out_of] == [("models:/churn/1", "produced")]
    assert mloop.get_model_version("churn/1", project=data).description == (
        f"trained by {run.uri}")
    d = history(project=data)[0]
    assert (d.pipeline, d.pipeline_run_id) == ("churn-training", run.id)
    with pytest.raises(NotFoundError, match="No promotion policy for 'other'"):
        promote(run, "other", project=data)
    with pytest.raises(InvalidInputError, match="logged no model"):
        promote(FakeRun("1" * 32, "churn-training"), POLICY, project=data)


def test_an_evaluation_that_cannot_run_is_a_failed_decision(data):
    policy = parse_policy({**POLICY, "target": "label"})
    result = promote(log_model(data), policy, project=data)
    assert result.decision == "failed" and result.registered is None
    assert "has no target column 'label'" in result.reasons[0]
    assert result.reasons[0].endswith("; nothing registered")


def test_on_a_file_the_champion_is_evaluated_again_on_its_current_content(data):
    path = data.root / "holdout.csv"
    TEST.to_csv(path, index=False)
    policy = {**POLICY, "data": str(path)}
    _champion(data, COLUMNS)
    first = promote(log_model(data, COLUMNS[:1]), policy, project=data)
    assert first.decision == "rejected"  # one feature: worse than the champion
    assert any(f"evaluated now on {path} (content blake3:" in r for r in first.reasons)
    # the file is rewritten: its labels flipped, the champion is now bad at it. The
    # recorded evaluation on that path is stale: the champion is evaluated again, so a
    # model equal to it is measured equal to it (not against its old, better numbers)
    TEST.assign(target=1 - TEST.target).to_csv(path, index=False)
    second = promote(log_model(data, COLUMNS), policy, project=data)
    assert not any("as recorded on" in r for r in second.reasons)
    assert any(f"evaluated now on {path}" in r for r in second.reasons)
    roc = second.comparisons[0]
    assert roc.metric == "roc_auc" and roc.old < 0.5
    assert roc.old == pytest.approx(roc.new)
    assert all(c.passed for c in second.comparisons), second.reasons


def test_a_file_that_changes_during_the_promotion_fails_it(data, monkeypatch):
    from mloop.automation import promotion

    path = data.root / "holdout.csv"
    TEST.to_csv(path, index=False)
    champion = _champion(data, COLUMNS)
    evaluate = promotion._evaluate

    def rewritten_meanwhile(project, model, policy, record=True):
        if model == champion.uri:  # someone writes the file between the two evaluations
            TEST.iloc[:50].to_csv(path, index=False)
        return evaluate(project, model, policy, record=record)

    monkeypatch.setattr(promotion, "_evaluate", rewritten_meanwhile)
    candidate = log_model(data)
    result = promote(candidate, {**POLICY, "data": str(path)}, project=data)
    assert result.decision == "failed" and result.alias is None and result.registered is None
    assert result.reasons[0] == (f"{path} changed while {candidate} and {champion.uri} "
                                 "were evaluated on it: they were not measured on the same "
                                 "rows, nothing is compared")
    assert [v.version for v in mloop.list_model_versions("churn", project=data)] == [1]


def test_a_promoted_version_rolls_out_by_canary_and_gets_its_alias_when_it_promotes(data):
    import mloop.deploy as deploy

    old = _champion(data, COLUMNS[:1])
    deploy.create("churn-live", "models:/churn@champion", project=data)
    policy = {**POLICY, "alias": "champion",
              "deploy": {"deployment": "churn-live", "steps": [10, 100], "interval": "5m"}}
    result = promote(log_model(data), policy, project=data)
    assert result.decision == "promoted" and result.registered == "models:/churn/2"
    assert result.alias is None  # not yet: the rollout has to complete
    assert any("rolls out to deployments:/churn-live/2 by canary" in r for r in result.reasons)
    # the champion still points at the old version while the canary runs
    assert mloop.get_model_version("churn@champion", project=data).version == old.version
    revision = deploy.status("churn-live", project=data).revision
    assert revision.strategy == "canary" and revision.created_by == "system"
    assert revision.weights == {"stable": 90.0, "canary": 10.0}
    assert revision.policy["interval_ms"] == 300_000
    deploy.promote("churn-live", project=data)
    assert mloop.get_model_version("churn@champion", project=data).version == 2


def test_a_rollout_that_cannot_start_leaves_the_version_registered_out_of_traffic(data):
    policy = {**POLICY, "deploy": {"deployment": "nowhere"}}
    result = promote(log_model(data), policy, project=data)
    assert result.decision == "promoted" and result.registered == "models:/churn/1"
    assert any("could not start: No deployment named 'nowhere'" in r for r in result.reasons)


def test_a_deploy_policy_is_checked_like_every_key():
    from mloop.errors import ConfigError

    with pytest.raises(ConfigError, match="strategy"):
        parse_policy({**POLICY, "deploy": {"deployment": "d", "strategy": "yolo"}})
    with pytest.raises(ConfigError, match="stepz"):
        parse_policy({**POLICY, "deploy": {"deployment": "d", "stepz": [1]}})
