"""Editing one table of a TOML file keeps everything else byte for byte."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mloop.core.configfile import remove_table, set_table
from mloop.errors import ConfigError

USER_TEXT = """\
# my project settings
[store]
# uri = "postgresql://…"
sqlite_synchronous = "full"   # power loss too

[remotes.backup]
url = "s3://bucket/backup"

[models]
engine = "auto"
"""


def test_a_table_is_replaced_where_it_stands_and_the_rest_is_kept(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text(USER_TEXT)
    set_table(path, ("remotes", "backup"), {"url": "s3://bucket/new", "default": True})
    text = path.read_text()
    assert text == USER_TEXT.replace('url = "s3://bucket/backup"',
                                     'url = "s3://bucket/new"\ndefault = true')
    set_table(path, ("remotes", "my.team"), {"url": "file:///srv/x"})
    assert text + '\n[remotes."my.team"]\nurl = "file:///srv/x"\n' == path.read_text()
    assert remove_table(path, ("remotes", "backup"))
    assert not remove_table(path, ("remotes", "backup"))
    config = tomllib.loads(path.read_text())
    assert config["remotes"] == {"my.team": {"url": "file:///srv/x"}}
    assert config["store"] == {"sqlite_synchronous": "full"}
    assert path.read_text().startswith("# my project settings\n[store]\n# uri =")


def test_a_table_written_inline_is_reported_not_mangled(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text('remotes = { origin = { url = "s3://a" } }\n')
    with pytest.raises(ConfigError, match="Edit the file by hand"):
        set_table(path, ("remotes", "origin"), {"url": "s3://b"})
    assert path.read_text() == 'remotes = { origin = { url = "s3://a" } }\n'


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)),
                min_size=1, max_size=20)
values = st.one_of(st.booleans(), st.integers(-10**6, 10**6),
                   st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)),
                           max_size=40))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names, table=st.dictionaries(names, values, min_size=1, max_size=4))
def test_any_name_and_values_round_trip(tmp_path: Path, name: str, table: dict):
    path = tmp_path / "config.toml"
    path.write_text(USER_TEXT)
    set_table(path, ("remotes", name), table)
    config = tomllib.loads(path.read_text())
    assert config["remotes"][name] == table
    assert config["models"] == {"engine": "auto"}
    remove_table(path, ("remotes", name))
    if name != "backup":
        assert tomllib.loads(path.read_text()) == tomllib.loads(USER_TEXT)
