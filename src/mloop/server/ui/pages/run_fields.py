"""The query string of the runs pages: fields written as the filter language reads them
(``metrics.`val loss```), lists of them (``cols=``), the error of one that does not parse
(shown beside its input, the position marked), and one URL for every state.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from mloop.errors import FilterSyntaxError, InvalidInputError
from mloop.tracking.filter import OrderKey, parse_order_by, tokenize

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-/:]*(?:\.[A-Za-z_][A-Za-z0-9_\-/:]*)*")


@functools.lru_cache(maxsize=4096)
def field_ref(entity: str, key: str) -> str:
    """``entity.key`` as the filter and order languages read it back: bare when it can be,
    else the key quoted (``metrics.`val loss```, ``params."a`b"``)."""
    if _WORD.fullmatch(key):
        candidate = f"{entity}.{key}"
        try:
            parsed = parse_order_by(candidate)[0]
        except InvalidInputError:
            parsed = None
        if parsed is not None and parsed.key == key:
            return candidate
    if "`" not in key:
        return f"{entity}.`{key}`"
    return entity + '."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_fields(text: str) -> list[OrderKey]:
    """The fields of a comma-separated list (``cols=``), each as in ``order=`` (quoted keys
    may hold commas); :class:`FilterSyntaxError` names a wrong one."""
    if not text.strip():
        return []
    if len(text) > MAX_TEXT:
        raise InvalidInputError(f"The list of columns is {len(text):,} characters long; "
                                f"at most {MAX_TEXT:,}.")
    cuts = [t.pos for t in tokenize(text) if t.kind == "punct" and t.text == ","]
    fields: list[OrderKey] = []
    start = 0
    for end in [*cuts, len(text)]:
        piece = text[start:end]
        if piece.strip():
            try:
                fields += parse_order_by(piece)
            except FilterSyntaxError as exc:
                raise FilterSyntaxError(exc.message.split(" (at position", 1)[0], text,
                                        start + exc.position) from None
        start = end + 1
    if len(fields) > MAX_FIELDS:
        raise InvalidInputError(f"{len(fields)} columns asked for; a table shows at most "
                                f"{MAX_FIELDS}. Choose fewer with the column chooser.")
    return fields


@dataclass(frozen=True)
class InputError:
    """A filter, order or column list that does not parse, shown beside its input."""

    field: str  # "filter", "order", "cols" or "group"
    message: str
    text: str
    position: int

    @property
    def before(self) -> str:
        return self.text[:self.position]

    @property
    def at(self) -> str:
        return self.text[self.position:self.position + 1] or " "

    @property
    def after(self) -> str:
        return self.text[self.position + 1:]


def input_error(field: str, exc: FilterSyntaxError) -> InputError:
    return InputError(field, exc.message.split(" (at position", 1)[0].strip(), exc.text,
                      exc.position)


def canonical(request: Request, name: str) -> Response | None:
    """A 303 to the same URL with a repeated ``name`` (checkboxes send one value each)
    joined into one comma-separated value, so every state has one shareable URL."""
    values = request.query_params.getlist(name)
    if len(values) < 2:
        return None
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k != name]
    pairs.append((name, ",".join(v for v in values if v)))
    return RedirectResponse(request.url.path + "?" + urllib.parse.urlencode(pairs),
                            status_code=303)


MAX_NUMBER = 1_000_000  # a page or a count beyond this is a mistake
MAX_FIELDS = 100  # columns a table shows at once
MAX_TEXT = 4096  # characters of a filter, an order or a list of columns


def int_query(request: Request, name: str, default: int) -> int:
    """The positive whole number ``name`` of the query string (``default`` when absent;
    at most :data:`MAX_NUMBER`)."""
    text = request.query_params.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidInputError(f"{name}={text!r} is not a number; use e.g. {name}=2.") from None
    if value < 1:
        raise InvalidInputError(f"{name} starts at 1, not {value}.")
    if value > MAX_NUMBER:
        raise InvalidInputError(f"{name}={value} is past the end (at most {MAX_NUMBER:,}).")
    return value
