"""What every command shares: a whole sentence as its summary in ``--help`` listings, and
``-q/--quiet`` anywhere on the command line."""

import os

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from mloop.cli import cli, first_sentence
from mloop.core.progress import QUIET_ENV
from tests.cli.test_cli import _commands, run_cli


@pytest.mark.parametrize("width", [50, 80, 100])
def test_no_summary_is_cut_mid_sentence(width):
    for path, cmd in _commands(cli):
        # the narrowest column click leaves for a summary beside a long command name
        text = cmd.get_short_help_str(limit=width - 6 - 20)
        where = f"`mloop {' '.join(path)}`: {text!r}"
        assert not text.endswith(("...", "…")), where
        assert text.count("(") == text.count(")"), where
        assert text.endswith((".", "!", "?")), where
        assert len(text) <= 100, where


def test_listings_show_whole_sentences(tmp_path):
    out = run_cli("data", "--help", cwd=tmp_path).stdout
    assert "(e.g. `mloop data tag train@2 golden`); moves an existing tag." in " ".join(
        out.split())


def test_first_sentence():
    assert first_sentence("Name REF with TAG (e.g. `x`); moves it. More.") == \
        "Name REF with TAG (e.g. `x`); moves it."
    assert first_sentence("A card (Mitchell et al. 2019) for a version.\n\nDetails.") == \
        "A card (Mitchell et al. 2019) for a version."
    assert first_sentence("Two\nlines. Next") == "Two lines."
    assert first_sentence("No full stop") == "No full stop"
    assert first_sentence("") == ""


@given(st.lists(st.sampled_from(["word", "e.g.", "(a", "b)", "end.", "x,"]), max_size=12))
def test_first_sentence_is_a_prefix_of_the_words(words):
    text = " ".join(words)
    assert text.startswith(first_sentence(text))


def test_quiet_is_accepted_after_the_subcommand(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(QUIET_ENV, raising=False)
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "p"]).exit_code == 0
    monkeypatch.chdir(tmp_path / "p")
    (tmp_path / "p" / "t.csv").write_text("a,b\n1,2\n")
    result = runner.invoke(cli, ["data", "add", "t.csv", "-q"])
    assert result.exit_code == 0, result.output
    assert os.environ.get(QUIET_ENV) == "1"
    for args in (["runs", "list", "--quiet"], ["data", "-q", "list"], ["-q", "data", "list"]):
        assert runner.invoke(cli, args).exit_code == 0, args


def test_quiet_through_the_real_entry_point(tmp_path):
    run_cli("init", "p", "-q", cwd=tmp_path)
    out = run_cli("runs", "list", "-q", cwd=tmp_path / "p")
    assert "No runs match" in out.stdout


def test_every_command_takes_quiet():
    for path, cmd in _commands(cli):
        names = {o for p in cmd.params if isinstance(p, click.Option) for o in p.opts}
        assert {"-q", "--quiet"} <= names, path
