"""The one YAML loader: every YAML file mloop reads goes through :func:`load_yaml`.

PyYAML's safe loader builds no objects of arbitrary classes, but it still lets a small
file describe a huge document: nine nested anchors of nine aliases each ("billion
laughs") expand to 9⁹ nodes as soon as anything walks them. This loader refuses, with a
:class:`~mloop.errors.ConfigError` naming the file, anything that could hurt:

- a file over 1 MiB (``MAX_BYTES``), checked before it is read;
- more than 100 aliases (``MAX_ALIASES``), or aliases that would expand the document
  past a million values (``MAX_NODES``; eight levels of nine aliases are only 72 aliases
  but 43 million values), both judged on the parser's event stream before a single node
  is built, so a refusal costs one parse of at most 1 MiB, well under a second;
- a key given twice in one mapping (PyYAML keeps the last silently; a typo'd copy of a
  threshold must not win unseen);
- text that is not UTF-8, and YAML that does not parse (with the line and column).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mloop.errors import ConfigError

MAX_BYTES = 1 << 20
MAX_ALIASES = 100
MAX_NODES = 1_000_000


def _yaml() -> Any:
    import yaml

    return yaml


def _loader_class() -> Any:
    yaml = _yaml()
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class StrictLoader(base):  # type: ignore[misc, valid-type]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, Any] = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if first is not key_node:
                    mark = key_node.start_mark
                    raise ConfigError(
                        f"{self._mloop_name}:{mark.line + 1}:{mark.column + 1}: the key "
                        f"{key!r} is given twice in the same mapping (first on line "
                        f"{first.start_mark.line + 1}); keep one.")
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


_LOADER: Any = None


def _check_expansion(yaml: Any, text: str, name: str) -> None:
    """Refuse more than ``MAX_ALIASES`` aliases, or aliases that would expand the
    document past ``MAX_NODES`` values, judged on the event stream before any node is
    built: each anchored node's expanded size is remembered, an alias adds it again."""
    aliases = 0
    sizes: dict[str, int] = {}
    stack: list[tuple[str | None, int]] = [(None, 0)]
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                weight = sizes.get(event.anchor, 1)
            else:
                weight = 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            anchor, count = stack[-1]
            stack[-1] = (anchor, count + weight)
            if aliases > MAX_ALIASES or stack[-1][1] > MAX_NODES:
                mark = event.start_mark
                raise ConfigError(
                    f"{name}:{mark.line + 1}: too many YAML aliases "
                    f"(*name): more than {MAX_ALIASES}, or expanding to more than "
                    f"{MAX_NODES:,} values. mloop refuses such files because a few nested "
                    "anchors can expand to billions of values; write the values out.")
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            stack.append((event.anchor, 1))
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, count = stack.pop()
            if anchor is not None:
                sizes[anchor] = count
            parent, total = stack[-1]
            stack[-1] = (parent, total + count)
            if stack[-1][1] > MAX_NODES:
                mark = event.start_mark
                raise ConfigError(
                    f"{name}:{mark.line + 1}: the YAML aliases (*name) "
                    f"expand to more than {MAX_NODES:,} values. mloop refuses such files "
                    "because a few nested anchors can expand to billions of values; write "
                    "the values out.")


def loads_yaml(text: str, *, name: str = "<string>") -> Any:
    """Parse YAML ``text`` under the same limits as :func:`load_yaml` (``name`` is shown
    in errors)."""
    global _LOADER
    yaml = _yaml()
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise ConfigError(f"{name} is larger than {MAX_BYTES >> 20} MiB; mloop reads "
                          "configuration files up to that size.")
    if _LOADER is None:
        _LOADER = _loader_class()
    try:
        _check_expansion(yaml, text, name)
        loader = _LOADER(text)
        loader._mloop_name = name
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
        raise ConfigError(f"{where}: not valid YAML: {exc.problem or exc}. Fix the "
                          "file.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {exc}. Fix the file.") from None


def load_yaml(path: str | Path, *, missing_ok: bool = False) -> Any:
    """The parsed YAML file at ``path`` (``None`` when absent and ``missing_ok``).

    Raises :class:`ConfigError` for a missing file, one over 1 MiB, more than 100
    aliases, a duplicated key, text that is not UTF-8 or YAML that does not parse.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        if missing_ok:
            return None
        raise ConfigError(f"{path} does not exist.") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    if size > MAX_BYTES:
        raise ConfigError(f"{path} is {size:,} bytes; mloop reads configuration files up "
                          f"to {MAX_BYTES >> 20} MiB. Is this the right file?")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}); save it as "
                          "UTF-8.") from None
    return loads_yaml(text, name=str(path))
