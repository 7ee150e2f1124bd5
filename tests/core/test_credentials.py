import os
import stat
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.core.credentials import (
    credentials_path,
    dumps,
    get_credentials,
    load_credentials,
    set_credentials,
)
from mloop.errors import ConfigError


def test_lives_in_the_user_config_dir_not_the_project(tmp_path):
    assert credentials_path() == tmp_path / "user-config" / "mloop" / "credentials.toml"


def test_round_trip_with_mode_0600():
    path = set_credentials("servers", "http://127.0.0.1:8080", {"token": "mloop_a_b"})
    set_credentials("remotes", "backup", {"key": "K", "secret": "S"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert get_credentials("servers", "http://127.0.0.1:8080") == {"token": "mloop_a_b"}
    assert get_credentials("remotes", "backup") == {"key": "K", "secret": "S"}
    assert get_credentials("remotes", "absent") == {}


def test_removing_the_last_entry_drops_its_table():
    set_credentials("remotes", "backup", {"key": "K"})
    set_credentials("remotes", "backup", None)
    assert load_credentials() == {}


def test_a_file_others_can_read_is_refused():
    path = set_credentials("remotes", "backup", {"secret": "S"})
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_credentials()


def test_a_broken_file_does_not_quote_its_secret():
    path = set_credentials("remotes", "backup", {"secret": "S"})
    path.write_text('[remotes.backup]\nsecret = "hunter2\n')
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as info:
        load_credentials()
    assert "hunter2" not in str(info.value)


_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(["servers", "remotes"]), name=_text,
       values=st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), min_size=1,
                                      max_size=12),
                              _text | st.integers(-(2**63), 2**63 - 1) | st.booleans(),
                              max_size=4))
def test_any_names_and_values_survive_the_file(kind, name, values):
    data = {kind: {name: values}}
    assert tomllib.loads(dumps(data)) == data
