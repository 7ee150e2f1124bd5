""".mloop/automation.yaml: the documented example, defaults, every error message."""

from datetime import UTC, datetime

import pytest

from mloop.automation.config import (
    AlertTrigger,
    DatasetTrigger,
    ScheduleTrigger,
    crontab_weekdays,
    load_config,
    parse_config,
)
from mloop.errors import ConfigError
from tests.automation.conftest import write_yaml

EXAMPLE = """
pipelines:
  churn-training:
    params: {C: 0.5}
    inputs: {raw: train@latest}
    triggers:
      - schedule: "0 3 * * *"
      - dataset: train
      - alert: {model: churn, rules: [data-drift, performance-drop]}
    cooldown: 6h
    validate: {dataset: train, schema: schemas/train.yaml}
    promotion:
      model: churn
      data: test@latest
      target: target
      suite: null
      compare: {alias: champion, metrics: {roc_auc: {min_change: 0.0},
                                            accuracy: {min_change: -0.01}}}
      alias: challenger
"""


def test_the_documented_example(proj):
    write_yaml(proj, EXAMPLE)
    auto = load_config(proj.root).pipelines["churn-training"]
    assert auto.params == {"C": 0.5} and auto.inputs == {"raw": "train@latest"}
    assert auto.triggers == (ScheduleTrigger("0 3 * * *", 3_600_000), DatasetTrigger("train"),
                             AlertTrigger("churn", ("data-drift", "performance-drop")))
    assert [t.key for t in auto.triggers] == ["schedule 0 3 * * *", "dataset train",
                                              "alert churn"]
    assert auto.cooldown_ms == 6 * 3_600_000
    assert auto.validate.dataset == "train"
    assert auto.validate.schema == str(proj.root / "schemas/train.yaml")  # the project's
    p = auto.promotion
    assert (p.model, p.data, p.target, p.suite, p.compare_alias, p.alias) == (
        "churn", "test@latest", "target", None, "champion", "challenger")
    assert [(m.metric, m.min_change, m.max_change) for m in p.metrics] == [
        ("roc_auc", 0.0, None), ("accuracy", -0.01, None)]


def test_defaults_and_no_file(proj):
    assert load_config(proj.root).pipelines == {}
    c = parse_config({"pipelines": {"p": {"triggers": [{"alert": "churn"}],
                                          "promotion": {"model": "m", "data": "d.csv",
                                                        "target": "y",
                                                        "compare": {"metrics": {
                                                            "rmse": None}}}}}}, proj.root)
    auto = c.pipelines["p"]
    assert auto.cooldown_ms == 0 and auto.validate is None and auto.executor == "local"
    assert auto.triggers == (AlertTrigger("churn", None),)
    p = auto.promotion
    assert p.data == str(proj.root / "d.csv") and p.compare_alias == "champion"
    assert p.alias == "challenger"
    assert (p.metrics[0].min_change, p.metrics[0].max_change) == (None, 0.0)  # an error


def _promo(**extra):
    return {"pipelines": {"p": {"promotion": {"model": "m", "data": "d", "target": "y",
                                              **extra}}}}


@pytest.mark.parametrize(("raw", "words"), [
    ({"pipeline": {}}, "pipeline: unknown key; did you mean 'pipelines'?"),
    ({"pipelines": {"p": {"trigger": []}}},
     "pipelines.p.trigger: unknown key; did you mean 'triggers'?"),
    ({"pipelines": {"bad name": {}}}, "pipelines['bad name']: Invalid pipeline name"),
    ({"pipelines": {"p": {"triggers": {"dataset": "x"}}}},
     "pipelines.p.triggers: expected a list of mappings"),
    ({"pipelines": {"p": {"triggers": [{"cron": "x"}]}}},
     "pipelines.p.triggers[0].cron: unknown key; known keys: schedule, grace, dataset, alert"),
    ({"pipelines": {"p": {"triggers": [{"schedule": "0 3 * * *", "dataset": "x"}]}}},
     "pipelines.p.triggers[0]: name exactly one of schedule, dataset, alert"),
    ({"pipelines": {"p": {"triggers": [{"schedule": "0 3 * *"}]}}},
     "triggers[0]: cron '0 3 * *': Wrong number of fields"),
    ({"pipelines": {"p": {"triggers": [{"schedule": "61 * * * *"}]}}}, "higher than the max"),
    ({"pipelines": {"p": {"triggers": [{"schedule": "0 3 * * 8"}]}}}, "day of week '8'"),
    ({"pipelines": {"p": {"triggers": [{"schedule": "0 3 * * *", "grace": "soon"}]}}},
     "triggers[0].grace: Cannot read the duration"),
    ({"pipelines": {"p": {"triggers": [{"dataset": "train", "grace": "1h"}]}}},
     "triggers[0]: grace goes with schedule only"),
    ({"pipelines": {"p": {"triggers": [{"alert": {"rules": ["x"]}}]}}},
     "triggers[0].alert: the key 'model' is required"),
    ({"pipelines": {"p": {"triggers": [{"alert": {"model": "m", "rules": []}}]}}},
     "triggers[0].alert.rules: needs at least 1 item, got a list []"),
    ({"pipelines": {"p": {"cooldown": "6 hours"}}}, "pipelines.p.cooldown"),
    ({"pipelines": {"p": {"executor": "dsk"}}},
     "pipelines.p.executor: expected one of 'local' or 'dask', got 'dsk'; did you mean "
     "'dask'?"),
    ({"pipelines": {"p": {"validate": {"dataset": "train"}}}},
     "pipelines.p.validate: the key 'schema' is required"),
    ({"pipelines": {"p": {"validate": {"dataset": "train", "schema": "s.yaml", "shema": 1}}}},
     "pipelines.p.validate.shema: unknown key; did you mean 'schema'?"),
    ({"pipelines": {"p": {"promotion": {"model": "m"}}}},
     "the key 'data' is required (a string); add it; the key 'target' is required"),
    (_promo(alias="the champ"), "promotion.alias: alias 'the champ' must be an identifier"),
    (_promo(compare={"metrics": {"acuracy": {"min_change": 0}}}),
     "compare.metrics.acuracy: unknown metric; did you mean 'accuracy'?"),
    (_promo(compare={"metrics": {"log_loss": {"min_change": 0}}}), "log_loss is an error"),
    (_promo(compare={"metrics": {"roc_auc": {"max_change": 0}}}), "roc_auc is a score"),
    (_promo(compare={"metrics": {"roc_auc": {"min_change": "a lot"}}}),
     "compare.metrics.roc_auc.min_change: expected a number, got 'a lot'"),
    (_promo(compare={"metrics": {"roc_auc": {"min_chnage": 0}}}),
     "compare.metrics.roc_auc.min_chnage: unknown key; did you mean 'min_change'?"),
    (_promo(comparre={}), "pipelines.p.promotion.comparre: unknown key; did you mean "
                          "'compare'?"),
])
def test_errors_name_the_place_and_the_fix(raw, words):
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert err.value.message.startswith("automation.yaml: ")
    assert words in err.value.message


def test_a_broken_file_is_a_config_error_naming_it(proj):
    path = write_yaml(proj, "pipelines: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(proj.root)
    write_yaml(proj, "pipelines:\n  p:\n    cooldown: forever\n")
    with pytest.raises(ConfigError) as err:
        load_config(proj.root)
    assert str(path) in err.value.message and "pipelines.p.cooldown" in err.value.message


@pytest.mark.parametrize(("expr", "expected"), [
    ("0 3 * * *", "0 3 * * *"),
    ("0 3 * * 1-5", "0 3 * * mon,tue,wed,thu,fri"),
    ("0 3 * * 0", "0 3 * * sun"),
    ("0 3 * * 7", "0 3 * * sun"),
    ("0 3 * * 5-7", "0 3 * * fri,sat,sun"),
    ("0 3 * * */2", "0 3 * * sun,tue,thu,sat"),
    ("0 3 * * 1,3", "0 3 * * mon,wed"),
    ("0 3 * * mon-fri", "0 3 * * mon-fri"),
])
def test_crontab_weekday_numbers_keep_their_crontab_meaning(expr, expected):
    assert crontab_weekdays(expr) == expected


def test_cron_days_fire_on_the_crontab_day():
    # 2024-05-04 is a Saturday: "1-5" (Monday to Friday in crontab) next fires on Monday
    trigger = ScheduleTrigger("30 3 * * 1-5").cron_trigger()
    after = trigger.get_next_fire_time(None, datetime(2024, 5, 4, tzinfo=UTC))
    assert after == datetime(2024, 5, 6, 3, 30, tzinfo=UTC)
    sunday = ScheduleTrigger("0 0 * * 0").cron_trigger()
    assert sunday.get_next_fire_time(None, datetime(2024, 5, 4, tzinfo=UTC)).strftime(
        "%A") == "Sunday"
