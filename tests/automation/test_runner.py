"""One round of ``check``: the data gate, failures, cooldowns, dry runs, with a fake
engine; then the whole loop on the real pipeline engine."""

import pytest

import mloop
from mloop.automation import check, history, state
from mloop.errors import NotFoundError
from tests.automation.conftest import (
    TEST,
    TRAIN,
    add_dataset,
    log_model,
    write_pipelines,
    write_yaml,
)

HOUR = 3_600_000
T0 = 1_700_000_000_000
SCHEMA = "columns:\n  target: {type: int, allowed: [0, 1]}\nrows: {min: %d}\n"


def _config(project, *extra: str):
    write_yaml(project, "pipelines:\n  p:\n    inputs: {raw: train@latest}\n"
               "    triggers: [{dataset: train}]\n" + "".join(f"    {e}\n" for e in extra))


def test_the_data_gate_blocks_a_bad_version(proj, engine):
    (proj.root / "schema.yaml").write_text(SCHEMA % 1000)
    _config(proj, "validate: {dataset: train, schema: schema.yaml}", "cooldown: 6h")
    add_dataset(proj, "train", TRAIN)
    out = check(proj, now=T0)[0]
    assert out.status == "blocked" and engine.calls == []
    why = out.decision.reasons[0]
    assert why.startswith("data validation of data:/train@1 against ")
    assert "rows.min: measured 380, expected 1000" in why
    assert mloop.data.get("train@1", project=proj).validation["passed"] is False
    assert check(proj, now=T0 + 1)[0].status == "idle"  # that version had its chance
    # a good version passes the gate; a blocked attempt started no cooldown
    (proj.root / "schema.yaml").write_text(SCHEMA % 100)
    add_dataset(proj, "train", TRAIN.iloc[:300])
    assert check(proj, now=T0 + 2)[0].status == "succeeded"
    assert mloop.data.get("train@2", project=proj).validation["passed"] is True
    assert [d.decision for d in history(project=proj)] == ["succeeded", "blocked"]


def test_a_failed_run_and_an_engine_error_are_recorded(proj, engine):
    _config(proj)
    add_dataset(proj, "train", TRAIN)
    engine.status = "failed"
    out = check(proj)[0]
    assert out.status == "failed" and out.error is None  # a decision, not an error
    assert out.decision.reasons == [
        f"{out.decision.pipeline_uri} failed: step train failed: boom"]
    into, _ = mloop.lineage.neighbours(proj, out.decision.pipeline_uri)
    assert [(e.src, e.relation) for e in into] == [("data:/train@1", "triggered")]

    def explode():
        raise RuntimeError("disk full")

    engine.hook = explode
    add_dataset(proj, "train", TRAIN.iloc[:300])
    out = check(proj)[0]
    assert out.status == "failed"
    assert out.decision.reasons == ["automation stopped: RuntimeError: disk full",
                                    "the events stay pending: the next check tries again"]
    assert out.error == out.decision.reasons[0]  # and an error of the automation
    assert state.get_state(proj, "p").lease is None  # released
    assert state.consumed(proj, "p", "dataset train") == {"1"}  # the crash consumed nothing
    engine.hook, engine.status = None, "succeeded"
    again = check(proj)[0]  # train@2 fires again
    assert again.status == "succeeded" and again.trigger == "dataset train@2"
    assert state.consumed(proj, "p", "dataset train") == {"1", "2"}
    assert check(proj)[0].status == "idle"


def test_unknown_pipelines_leave_the_events_pending(proj, engine):
    write_yaml(proj, """
        pipelines:
          missing:
            triggers: [{dataset: train}]
    """)
    add_dataset(proj, "train", TRAIN)
    out = check(proj)[0]
    assert out.status == "error" and out.notes == ["No pipeline 'missing' in this project."]
    assert out.error == "No pipeline 'missing' in this project."
    assert history(project=proj) == []
    assert check(proj)[0].status == "error"  # still pending
    with pytest.raises(NotFoundError, match="No automation for nope"):
        check(proj, pipelines=["nope"])


def test_cooldown_and_dry_run(proj, engine):
    _config(proj, "cooldown: 6h", "validate: {dataset: train, schema: schema.yaml}",
            "promotion: {model: churn, data: test@latest, target: target}")
    (proj.root / "schema.yaml").write_text(SCHEMA % 10)
    add_dataset(proj, "train", TRAIN)
    dry = check(proj, dry_run=True, now=T0)[0]
    assert dry.status == "would_run" and dry.trigger == "dataset train@1"
    assert dry.notes == [f"validates train against {proj.root / 'schema.yaml'} first",
                         "then evaluates the new model on test@latest, compares it with "
                         "churn@champion and registers it as churn only when promoted"]
    assert history(project=proj) == [] and engine.calls == []
    engine.models = []
    ran = check(proj, now=T0)[0]
    assert ran.status == "failed"  # a promotion policy, and the run logged no model
    assert "it logged no model to promote" in ran.decision.reasons[-1]
    add_dataset(proj, "train", TRAIN.iloc[:300])
    assert check(proj, dry_run=True, now=T0 + HOUR)[0].status == "would_wait"
    skipped = check(proj, now=T0 + HOUR)[0]
    assert skipped.status == "skipped_cooldown"
    assert skipped.decision.decision == "skipped_cooldown"
    again = check(proj, now=T0 + 2 * HOUR)[0]
    assert again.status == "skipped_cooldown" and again.decision is None  # recorded once
    assert len(engine.calls) == 1
    engine.models = [log_model(proj)]
    add_dataset(proj, "test", TEST)
    assert check(proj, now=T0 + 6 * HOUR)[0].status == "promoted"  # the event waited
    assert [d.decision for d in history(project=proj)] == ["promoted", "skipped_cooldown",
                                                           "failed"]


def test_no_policy_means_succeeded(proj, engine):
    _config(proj)
    add_dataset(proj, "train", TRAIN)
    engine.models = ["runs:/abc/model"]
    out = check(proj)[0]
    assert out.status == "succeeded" and out.decision.model_uri == "runs:/abc/model"
    assert out.decision.reasons[-1] == "no promotion policy: nothing registered"


def test_the_whole_loop_on_the_real_engine(proj):
    write_pipelines(proj)
    write_yaml(proj, """
        pipelines:
          churn-training:
            inputs: {raw: train@latest}
            params: {C: 0.5}
            triggers: [{dataset: train}, {schedule: "0 3 * * *"}]
            promotion:
              model: churn
              data: test@latest
              target: target
              compare: {metrics: {roc_auc: {min_change: 0.0}}}
              alias: champion
    """)
    add_dataset(proj, "test", TEST)
    add_dataset(proj, "train", TRAIN)
    first = check(proj)[0]
    assert first.status == "promoted", first.notes or first.decision.reasons
    d = first.decision
    assert d.registered == "models:/churn/1" and d.model_uri.startswith("runs:/")
    assert mloop.get_model_version("churn@champion", project=proj).version == 1
    shown = mloop.pipelines.get_run(d.pipeline_run_id, project=proj)
    assert shown["trigger"] == "dataset train@1"
    into, out_of = mloop.lineage.neighbours(proj, d.pipeline_uri)
    assert ("data:/train@1", "triggered") in {(e.src, e.relation) for e in into}
    assert ("models:/churn/1", "produced") in {(e.dst, e.relation) for e in out_of}
    # the schedule fires with nothing new: every step is cached, nothing to register
    cached = check(proj, now=mloop_ms(2030, 1, 1, 3, 0))[0]
    assert cached.status == "succeeded"
    assert cached.decision.reasons[0] == (f"no new model: {d.model_uri} is already "
                                          "models:/churn/1")
    assert len(mloop.list_model_versions("churn", project=proj)) == 1
    # new, smaller data: a new model, compared with the champion
    add_dataset(proj, "train", TRAIN.iloc[:60])
    second = check(proj)[0]
    assert second.status in ("promoted", "rejected")
    assert second.decision.registered == (  # registered only once the gate promoted it
        "models:/churn/2" if second.status == "promoted" else None)
    assert any("as recorded on data:/test@1" in r for r in second.decision.reasons)


def mloop_ms(*args):
    from datetime import UTC, datetime

    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


WITH_IDS = """
    import mloop
    from sklearn.linear_model import LogisticRegression

    @mloop.step
    def train(raw: mloop.Dataset) -> mloop.Model:
        df = raw.load()
        return LogisticRegression(max_iter=1000).fit(
            df.drop(columns=["patient_id", "target"]), df.target)

    churn = mloop.Pipeline("churn-training", steps=[train])
"""


def test_a_pipeline_model_on_rows_with_ids_is_gated_and_a_failing_gate_registers_nothing(
        proj):
    """Issue 14 §3: evaluation data with the id column and the target used to crash the
    round after registering; now the gate decides, and a failing gate registers nothing."""
    write_pipelines(proj, WITH_IDS)
    (proj.root / "strict.yaml").write_text("checks:\n  - metric: accuracy\n    min: 0.999\n")
    write_yaml(proj, """
        pipelines:
          churn-training:
            inputs: {raw: train@latest}
            triggers: [{dataset: train}]
            promotion: {model: churn, data: test@latest, target: target, suite: strict.yaml}
    """)
    ids = [f"id{i}" for i in range(len(TRAIN) + len(TEST))]
    add_dataset(proj, "test", TEST.assign(patient_id=ids[len(TRAIN):]))
    add_dataset(proj, "train", TRAIN.assign(patient_id=ids[:len(TRAIN)]))
    out = check(proj)[0]
    assert out.error is None, out.error
    assert out.status == "rejected", out.decision.reasons
    assert out.decision.registered is None and out.decision.model_uri.startswith("runs:/")
    assert out.decision.reasons[0].startswith("rejected: the strict suite failed (accuracy")
    with pytest.raises(NotFoundError):
        mloop.list_model_versions("churn", project=proj)
    assert check(proj)[0].status == "idle"  # a decision: the event is consumed
