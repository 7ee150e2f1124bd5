from pathlib import Path

import pytest

from mloop.core.settings import find_project_root, load_settings
from mloop.errors import ConfigError, ProjectNotFoundError
from mloop.project import Project


def _write_config(root: Path, text: str) -> None:
    (root / ".mloop").mkdir(parents=True, exist_ok=True)
    (root / ".mloop" / "config.toml").write_text(text)


def test_precedence_argument_env_config_default(tmp_path, monkeypatch):
    _write_config(tmp_path, "[tracking]\nflush_interval = 2.0\nflush_batch_size = 7\n")
    monkeypatch.setenv("MLOOP_FLUSH_INTERVAL", "3.5")
    s = load_settings(tmp_path, capture_git=False)
    assert s.flush_interval == 3.5 and s.source("flush_interval") == "env:MLOOP_FLUSH_INTERVAL"
    assert s.flush_batch_size == 7 and s.source("flush_batch_size") == "config.toml"
    assert s.capture_git is False and s.source("capture_git") == "argument"
    assert s.sqlite_synchronous == "normal" and s.source("sqlite_synchronous") == "default"
    assert load_settings(tmp_path, flush_interval=9.0).flush_interval == 9.0


def test_default_paths_live_in_project(tmp_path):
    s = load_settings(tmp_path)
    assert s.store_uri == f"sqlite:///{tmp_path.resolve() / '.mloop' / 'mloop.db'}"
    assert s.objects_uri == str(tmp_path.resolve() / ".mloop" / "objects")


def test_relative_paths_in_config_are_relative_to_project(tmp_path, monkeypatch):
    _write_config(tmp_path, '[store]\nuri = "sqlite:///meta/db.sqlite"\n[objects]\nuri = "blobs"\n')
    monkeypatch.chdir("/")
    s = load_settings(tmp_path)
    assert s.store_uri == f"sqlite:///{tmp_path.resolve() / 'meta' / 'db.sqlite'}"
    assert s.objects_uri == str(tmp_path.resolve() / "blobs")


@pytest.mark.parametrize(("env", "value"), [("MLOOP_FLUSH_INTERVAL", "-1"),
                                            ("MLOOP_CAPTURE_GIT", "maybe"),
                                            ("MLOOP_SQLITE_SYNCHRONOUS", "off")])
def test_bad_values_name_the_setting(tmp_path, monkeypatch, env, value):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=env.removeprefix("MLOOP_").lower()):
        load_settings(tmp_path)


def test_broken_toml_is_a_config_error(tmp_path):
    _write_config(tmp_path, "[store\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(tmp_path)


def test_unknown_override_rejected(tmp_path):
    with pytest.raises(ConfigError, match="Unknown setting"):
        load_settings(tmp_path, colour="red")


def test_project_found_from_subfolder_like_git(tmp_path):
    Project.init(tmp_path)
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert find_project_root(deep) == tmp_path.resolve()


def test_outside_a_project_says_run_init(tmp_path):
    with pytest.raises(ProjectNotFoundError, match="mloop init"):
        find_project_root(tmp_path)


def test_project_env_var(tmp_path, monkeypatch):
    Project.init(tmp_path / "p")
    monkeypatch.setenv("MLOOP_PROJECT", str(tmp_path / "p"))
    monkeypatch.chdir(tmp_path)
    assert find_project_root() == (tmp_path / "p").resolve()
    monkeypatch.setenv("MLOOP_PROJECT", str(tmp_path / "nope"))
    with pytest.raises(ProjectNotFoundError, match="MLOOP_PROJECT"):
        find_project_root()


def test_init_is_idempotent_and_keeps_config(tmp_path):
    Project.init(tmp_path)
    cfg = tmp_path / ".mloop" / "config.toml"
    cfg.write_text(cfg.read_text() + "\n# mine\n")
    Project.init(tmp_path)
    assert "# mine" in cfg.read_text()
    Project.init(tmp_path, force=True)
    assert "# mine" not in cfg.read_text()


@pytest.mark.parametrize("uri", ["postgresql+psycopg://bob:hunter2@db:5432/x",
                                 "s3://AKIA:hunter2@bucket/blobs",
                                 "s3://bucket/blobs?token=hunter2"])
def test_a_secret_in_the_project_config_is_refused(tmp_path, uri):
    section = "store" if uri.startswith("postgresql") else "objects"
    _write_config(tmp_path, f'[{section}]\nuri = "{uri}"\n')
    with pytest.raises(ConfigError, match="holds a password or token") as err:
        load_settings(tmp_path)
    assert "hunter2" not in err.value.message
    _write_config(tmp_path, '[store]\nuri = "postgresql+psycopg://bob@db:5432/x"\n')
    assert load_settings(tmp_path).store_uri == "postgresql+psycopg://bob@db:5432/x"


def _write_user_config(text: str) -> Path:
    from mloop.core.settings import user_config_path

    path = user_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "words"), [
    ("[models]\nallow_pikle = true\n",
     "unknown setting 'allow_pikle' in [models]. Did you mean 'allow_pickle'?"),
    ("[tracking]\nflush_intervall = 1.0\n", "Did you mean 'flush_interval'?"),
    ("[strore]\nuri = 'x'\n", "unknown section [strore]. Did you mean 'store'?"),
    ("[colours]\nred = 1\n", "unknown section [colours]. Known: "),
    ("tracking = 3\n", "[tracking] must be a table of settings, not int"),
])
def test_unknown_config_keys_are_errors_with_the_closest_key(tmp_path, text, words):
    _write_config(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path)
    assert str(tmp_path / ".mloop" / "config.toml") in err.value.message
    assert words in err.value.message


def test_allow_pikle_typo_fails_through_the_cli(tmp_path):
    from tests.cli.test_cli import run_cli

    Project.init(tmp_path)
    (tmp_path / ".mloop" / "config.toml").write_text("[models]\nallow_pikle = true\n")
    out = run_cli("runs", "list", cwd=tmp_path, check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "Did you mean 'allow_pickle'?" in out.stderr


@pytest.mark.parametrize(("section", "key"), [("models", "allow_pickle"),
                                              ("webhooks", "allow_hosts")])
def test_a_user_only_setting_is_refused_in_the_project_config(tmp_path, section, key):
    value = "true" if key == "allow_pickle" else '["127.0.0.1"]'
    _write_config(tmp_path, f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path)
    assert f"[{section}] {key} cannot be set in a project's config" in err.value.message
    assert "MLOOP_" in err.value.message and "config.toml" in err.value.message


def test_the_user_config_is_read_below_the_project_config(tmp_path, monkeypatch):
    from mloop.core.settings import user_setting

    user = _write_user_config("[models]\nallow_pickle = true\n[tracking]\nflush_interval = 4.0\n"
                              "capture_git = false\n")
    _write_config(tmp_path, "[tracking]\nflush_interval = 2.0\n")
    s = load_settings(tmp_path)
    assert s.allow_pickle is True and s.source("allow_pickle") == "user config"
    assert s.flush_interval == 2.0 and s.source("flush_interval") == "config.toml"
    assert s.capture_git is False and s.source("capture_git") == "user config"
    assert user_setting("allow_pickle") is True
    assert user_setting("allow_pickle", False) is False  # an argument wins
    monkeypatch.setenv("MLOOP_ALLOW_PICKLE", "0")
    assert load_settings(tmp_path).allow_pickle is False  # so does the environment
    user.write_text("[models]\nallow_pikle = true\n")
    with pytest.raises(ConfigError, match="Did you mean 'allow_pickle'"):
        user_setting("allow_pickle")


def test_the_user_config_follows_xdg(tmp_path, monkeypatch):
    from mloop.core.settings import user_config_dir

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert user_config_dir() == tmp_path / "xdg" / "mloop"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_config_dir() == tmp_path / "home" / ".config" / "mloop"
