"""docs/configuration.md is generated from the schemas: it lists every key and every check
kind, and a stale page fails here (regenerate: python -m mloop.config_docs
docs/configuration.md)."""

from pathlib import Path

import pytest

from mloop import config_docs
from mloop.core.schema import keys_of, nested_models
from mloop.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "configuration.md"


def test_the_committed_page_is_what_the_schemas_say():
    assert PAGE.read_text(encoding="utf-8") == config_docs.render(), (
        "docs/configuration.md is stale: run `python -m mloop.config_docs "
        "docs/configuration.md`")


def test_check_mode_fails_on_a_stale_page(tmp_path, capsys):
    stale = tmp_path / "configuration.md"
    stale.write_text(PAGE.read_text().replace("`mni`", "`min`") + "edited by hand\n")
    assert config_docs.main(["--check", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert config_docs.main([str(stale)]) == 0
    assert config_docs.main(["--check", str(stale)]) == 0


def test_every_key_and_every_check_kind_is_listed():
    from mloop.automation.config import AutomationFile
    from mloop.data.quality import DataSchema
    from mloop.evaluation.kinds import kinds
    from mloop.evaluation.suite import SuiteFile
    from mloop.monitoring.rules import MonitoringFile
    from mloop.pipelines.stagefile import StagesFile
    from mloop.registry.card import CardSpec

    page = PAGE.read_text()
    for schema in (AutomationFile, DataSchema, SuiteFile, MonitoringFile, StagesFile,
                   CardSpec):
        for model in (schema, *(m for _, m in nested_models(schema))):
            for key in keys_of(model):
                assert f"| `{key}` |" in page, (model.__name__, key)
    for kind in kinds().values():
        if kind.run.__module__ == "mloop.evaluation.checks":
            for value in kind.variants:
                assert f"`{value}`" in page.split("### Check kinds")[1], (kind.name, value)


@pytest.mark.parametrize(("name", "text"), [
    ("suite.yaml", "checks:\n  - metric: accuracy\n    mni: 0.99\n"),
    (".mloop/monitoring.yaml", "alpha: 7\n"),
    ("mloop.yaml", "stages:\n  train:\n    cmd: 5\n"),
])
def test_the_examples_on_the_page_are_real_messages(tmp_path, monkeypatch, name, text):
    from mloop.evaluation.suite import load_suite
    from mloop.monitoring.rules import load_config
    from mloop.pipelines.stages import load_stages

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".mloop").mkdir()
    Path(name).write_text(text)
    load = {"suite.yaml": lambda: load_suite(name),
            ".mloop/monitoring.yaml": lambda: load_config(Path()),
            "mloop.yaml": lambda: load_stages(Path())}[name]
    with pytest.raises(ConfigError) as err:
        load()
    assert err.value.message in PAGE.read_text().split("```text")[1].split("```")[0]


def test_the_readme_links_the_page():
    assert "docs/configuration.md" in (ROOT / "README.md").read_text()


def test_help_prints_usage_and_writes_no_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        config_docs.main(["--help"])
    assert exc.value.code == 0
    assert "--check" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
