"""core.yamlio: the one YAML loader — size, aliases, expansion, duplicate keys, encoding,
and errors that give the file and line."""

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.core import yamlio
from mloop.core.yamlio import MAX_ALIASES, MAX_BYTES, MAX_NODES, load_yaml, loads_yaml
from mloop.errors import ConfigError


def alias_bomb(levels: int = 9, width: int = 9, indent: str = "") -> str:
    """``levels`` nested anchors, each a list of ``width`` aliases of the one before:
    a few hundred bytes that expand to ``width ** levels`` values ("billion laughs")."""
    lines = [f"{indent}- &a0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"{indent}- &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def _write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_plain_documents_load(tmp_path):
    path = _write(tmp_path, "a: 1\nb: [x, y]\nc: {d: 0.5, e: true}\n")
    assert load_yaml(path) == {"a": 1, "b": ["x", "y"], "c": {"d": 0.5, "e": True}}
    assert loads_yaml("") is None
    assert load_yaml(tmp_path / "absent.yaml", missing_ok=True) is None


def test_a_missing_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"absent\.yaml does not exist"):
        load_yaml(tmp_path / "absent.yaml")


def test_a_few_aliases_are_fine(tmp_path):
    path = _write(tmp_path, "base: &b {alpha: 0.1}\nrules: [*b, *b]\nmerged:\n  <<: *b\n"
                            "  beta: 2\n")
    data = load_yaml(path)
    assert data["rules"] == [{"alpha": 0.1}, {"alpha": 0.1}]
    assert data["merged"] == {"alpha": 0.1, "beta": 2}


def test_the_nine_level_bomb_is_refused_fast(tmp_path):
    path = _write(tmp_path, "items:\n" + alias_bomb(indent="  "))
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    assert time.perf_counter() - start < 5  # loosely: the unguarded parse takes minutes
    assert str(path) in err.value.message and "aliases" in err.value.message


def test_more_than_max_aliases_is_refused():
    ok = "a: &x 1\nb: [" + ", ".join(["*x"] * MAX_ALIASES) + "]\n"
    assert len(loads_yaml(ok)["b"]) == MAX_ALIASES
    too_many = "a: &x 1\nb: [" + ", ".join(["*x"] * (MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(ConfigError, match=rf"c.yaml:2: too many YAML aliases.*{MAX_ALIASES}"):
        loads_yaml(too_many, name="c.yaml")


def test_few_aliases_that_expand_too_far_are_refused():
    # 8 levels of 9 aliases: only 72 aliases, but 43 million values
    text = alias_bomb(levels=8)
    assert text.count("*") < MAX_ALIASES
    with pytest.raises(ConfigError, match=f"more than {MAX_NODES:,} values"):
        loads_yaml(text, name="c.yaml")
    assert len(loads_yaml(alias_bomb(levels=3))[2]) == 9  # 729 values: fine


def test_files_over_the_size_limit_are_refused_before_reading(tmp_path, monkeypatch):
    path = _write(tmp_path, "a: " + "x" * MAX_BYTES + "\n")
    opened = []
    monkeypatch.setattr(yamlio, "open", lambda *a, **k: opened.append(a), raising=False)
    with pytest.raises(ConfigError, match=r"bytes; mloop reads configuration files up to 1 "
                                          "MiB"):
        load_yaml(path)
    assert opened == []
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        loads_yaml("a: " + "x" * MAX_BYTES, name="big")


def test_a_duplicated_key_is_refused_with_both_lines(tmp_path):
    path = _write(tmp_path, "checks:\n  - metric: accuracy\n    min: 0.9\n    min: 0.5\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    assert err.value.message == (f"{path}:4:5: the key 'min' is given twice in the same "
                                 "mapping (first on line 3); keep one.")
    assert loads_yaml("a: {x: 1}\nb: {x: 2}\n") == {"a": {"x": 1}, "b": {"x": 2}}


def test_text_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin.yaml is not UTF-8 text \(byte 9\)"):
        load_yaml(path)


@pytest.mark.parametrize(("text", "where"), [
    ("a: [1, 2\nb: 3\n", ":2:2:"),
    ("a: 1\n  b: 2\n", ":2:4:"),
    ("a: 1\nb: *missing\n", ":2:4:"),
])
def test_syntax_errors_give_the_line_and_column(tmp_path, text, where):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    assert err.value.message.startswith(f"{path}{where} not valid YAML")


def test_no_python_objects_are_built():
    with pytest.raises(ConfigError, match="not valid YAML"):
        loads_yaml("x: !!python/object/apply:os.system ['echo hi']\n")


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) |
                    st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4),
                    max_leaves=20))
def test_what_pyyaml_dumps_loads_back(value):
    import yaml

    assert loads_yaml(yaml.safe_dump(value)) == value


def test_no_module_parses_yaml_but_this_one():
    import re
    from pathlib import Path

    import mloop

    src = Path(mloop.__file__).parent
    parsing = re.compile(r"yaml\.(safe_load|load|full_load|unsafe_load|parse|compose|"
                         r"\w*Loader)\b")
    found = [f"{p.relative_to(src)}:{n}" for p in src.rglob("*.py") if p.name != "yamlio.py"
             for n, line in enumerate(p.read_text().splitlines(), 1) if parsing.search(line)]
    assert found == []
