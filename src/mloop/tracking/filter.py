"""The run filter language: a tokenizer and a recursive-descent parser.

Grammar (keywords are case-insensitive)::

    filter     := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := atom ("and" atom)*
    atom       := "(" or_expr ")" | comparison
    comparison := field op value | field ["not"] "in" "(" value ("," value)* ")"
    field      := entity "." key          entity: metrics | params | tags | attributes
    key        := identifier | "quoted" | `quoted`
    op         := = | != | <> | < | <= | > | >= | like | ilike | not like
    value      := number | 'string' | "string" | null

Examples: ``metrics.acc > 0.9 and params.model = 'logreg'``,
``tags.team IN ('risk', 'ops')``, ``attributes.status != 'FAILED'``,
``metrics.`val loss` <= 0.2``. Errors carry the position of the offending token.

Limits (each a :class:`FilterSyntaxError` naming it): at most :data:`MAX_LENGTH`
characters, :data:`MAX_DEPTH` nested parentheses and as many nested and/or groups
(``a or b and (c or d …)`` nests two per parenthesis), :data:`MAX_TERMS` comparisons and
:data:`MAX_VALUES` values in IN lists altogether. They keep the parser's recursion and
the SQL statement it becomes inside what Python and the databases accept: SQLite refuses
an expression tree deeper than 1,000 (a 5,000-term OR is one), and its parser overflows
near 30 nested groups of IN probes; the worst filter within the limits is tested on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mloop.errors import FilterSyntaxError, InvalidInputError

ENTITIES = {
    "metrics": "metrics", "metric": "metrics",
    "params": "params", "param": "params", "parameters": "params",
    "tags": "tags", "tag": "tags",
    "attributes": "attributes", "attribute": "attributes", "attr": "attributes",
    "run": "attributes",
}
ATTRIBUTES = {"status", "name", "run_name", "start_time", "end_time", "run_id", "id", "user",
              "experiment", "parent_id", "duration"}
NUMERIC_ATTRIBUTES = {"start_time", "end_time", "duration"}
COMPARE_OPS = {"=", "!=", "<>", "<", "<=", ">", ">="}
MAX_LENGTH = 1_000_000
MAX_DEPTH = 20
MAX_TERMS = 400
MAX_VALUES = 10_000
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf(?:inity)?\b|nan\b))
  | (?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
  | (?P<bq>`[^`]*`)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),.])
  | (?P<word>[A-Za-z_][A-Za-z0-9_\-/:]*)
""", re.VERBOSE | re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # num, str, bq, op, punct, word, end
    text: str
    pos: int


@dataclass(frozen=True, slots=True)
class Comparison:
    entity: str  # metrics, params, tags, attributes
    key: str
    op: str  # =, !=, <, <=, >, >=, like, ilike, not like, in, not in
    value: float | str | tuple[float | str, ...] | None
    pos: int


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # and, or
    parts: tuple[Node, ...]


Node = Comparison | BoolOp


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text`` (whitespace dropped), ending with an ``end`` token."""
    if len(text) > MAX_LENGTH:
        raise FilterSyntaxError(f"The filter is {len(text):,} characters long; at most "
                                f"{MAX_LENGTH:,} are accepted", text, MAX_LENGTH)
    bad = _UNSTORABLE.search(text)
    if bad is not None:  # no store can hold or compare these: refuse rather than fail there
        raise FilterSyntaxError("A NUL character or an undecodable byte cannot be part of a "
                                "filter", text, bad.start())
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FilterSyntaxError(f"Unexpected character {text[pos]!r}", text, pos)
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0  # parentheses open at the current token
        self.terms = 0  # comparisons read so far
        self.values = 0  # values in IN lists so far

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, tok: Token | None = None) -> FilterSyntaxError:
        return FilterSyntaxError(message, self.text, (tok or self.tok).pos)

    def take(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def keyword(self, *words: str) -> bool:
        tok = self.tok
        return tok.kind == "word" and tok.text.lower() in words

    def parse(self) -> Node:
        node = self.or_expr()
        if self.tok.kind != "end":
            raise self.error(f"Expected 'and', 'or' or the end of the filter, found "
                             f"{self.tok.text!r}")
        depth, pos = _nesting(node)
        if depth > MAX_DEPTH:
            raise FilterSyntaxError(f"And/or groups nested more than {MAX_DEPTH} deep; "
                                    "simplify the filter", self.text, pos)
        return node

    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while self.keyword("or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def and_expr(self) -> Node:
        parts = [self.atom()]
        while self.keyword("and"):
            self.take()
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def atom(self) -> Node:
        if self.tok.text == "(":
            if self.depth >= MAX_DEPTH:
                raise self.error(f"Parentheses nested more than {MAX_DEPTH} deep; "
                                 "simplify the filter")
            self.depth += 1
            self.take()
            node = self.or_expr()
            if self.tok.text != ")":
                raise self.error("Expected ')'")
            self.take()
            self.depth -= 1
            return node
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise self.error(f"More than {MAX_TERMS} comparisons; use IN (…) for many values "
                             "of one field, or split the search")
        return self.comparison()

    def field(self) -> tuple[str, str, Token]:
        tok = self.tok
        if tok.kind != "word":
            raise self.error("Expected a field such as metrics.acc, params.model, tags.team "
                             "or attributes.status")
        self.take()
        entity = ENTITIES.get(tok.text.lower())
        if entity is None:
            raise self.error(f"Unknown field type {tok.text!r}: use metrics., params., tags. "
                             "or attributes.", tok)
        if self.tok.text != ".":
            raise self.error(f"Expected '.' and a name after {tok.text!r}")
        self.take()
        key_tok = self.take()
        if key_tok.kind == "word" or (key_tok.kind == "num" and key_tok.text.isalpha()):
            key = key_tok.text
        elif key_tok.kind in {"str", "bq"}:
            key = _unquote(key_tok.text)
        else:
            raise self.error(f"Expected a name after '{tok.text}.'", key_tok)
        # Dotted keys such as metrics.val.loss: keep joining word parts.
        while self.tok.text == "." and self.tokens[self.i + 1].kind == "word":
            self.take()
            key += "." + self.take().text
        if entity == "attributes":
            key = key.lower()
            if key not in ATTRIBUTES:
                raise self.error(f"Unknown attribute {key!r}; known: "
                                 f"{', '.join(sorted(ATTRIBUTES))}", key_tok)
            key = {"run_name": "name", "id": "run_id"}.get(key, key)
        return entity, key, tok

    def comparison(self) -> Comparison:
        entity, key, start = self.field()
        op_tok = self.tok
        value: float | str | tuple[float | str, ...] | None
        if op_tok.kind == "op":
            self.take()
            op = "!=" if op_tok.text == "<>" else op_tok.text
            value = self.value()
        elif self.keyword("like", "ilike"):
            op = self.take().text.lower()
            value = self.value()
        elif self.keyword("in"):
            self.take()
            op, value = "in", self.value_list()
        elif self.keyword("not"):
            self.take()
            if self.keyword("in"):
                self.take()
                op, value = "not in", self.value_list()
            elif self.keyword("like", "ilike"):
                op, value = "not " + self.take().text.lower(), self.value()
            else:
                raise self.error("Expected IN or LIKE after NOT")
        else:
            raise self.error("Expected a comparison operator (=, !=, <, <=, >, >=, LIKE, IN)")
        node = Comparison(entity, key, op, value, start.pos)
        _check_types(node, self, op_tok)
        return node

    def value(self) -> float | str | None:
        tok = self.take()
        if tok.kind == "num":
            return float(tok.text)
        if tok.kind == "str":
            return _unquote(tok.text)
        if tok.kind == "word" and tok.text.lower() == "null":
            return None
        raise self.error("Expected a value: a number or a quoted string", tok)

    def value_list(self) -> tuple[float | str, ...]:
        if self.tok.text != "(":
            raise self.error("Expected '(' to start the list after IN")
        self.take()
        values: list[float | str] = []
        while True:
            v = self.value()
            if v is None:
                raise self.error("NULL cannot be in an IN list", self.tokens[self.i - 1])
            self.values += 1
            if self.values > MAX_VALUES:
                raise self.error(f"More than {MAX_VALUES:,} values in IN lists; split the "
                                 "search", self.tokens[self.i - 1])
            values.append(v)
            if self.tok.text == ",":
                self.take()
                continue
            if self.tok.text == ")":
                self.take()
                return tuple(values)
            raise self.error("Expected ',' or ')' in the IN list")


def _nesting(node: Node) -> tuple[int, int]:
    """How deeply and/or groups nest in ``node`` (each is one level of parentheses in
    SQL), and the position of a comparison at the deepest level."""
    if isinstance(node, Comparison):
        return 0, node.pos
    depth, pos = max((_nesting(part) for part in node.parts), key=lambda found: found[0])
    return depth + 1, pos


def _unquote(text: str) -> str:
    quote, body = text[0], text[1:-1]
    if quote == "'":
        body = body.replace("''", "'")
    return re.sub(r"\\(.)", r"\1", body)


def _check_types(node: Comparison, parser: _Parser, op_tok: Token) -> None:
    numeric = node.entity == "metrics" or (node.entity == "attributes"
                                           and node.key in NUMERIC_ATTRIBUTES)
    values = node.value if isinstance(node.value, tuple) else (node.value,)
    value_tok = parser.tokens[parser.i - 1]
    if node.op in {"like", "ilike", "not like", "not ilike"}:
        if numeric:
            raise parser.error(f"LIKE compares text; {node.entity}.{node.key} is a number", op_tok)
        if not isinstance(node.value, str):
            raise parser.error("LIKE needs a quoted pattern such as 'log%'", value_tok)
        return
    for v in values:
        if v is None:
            if node.op not in {"=", "!="}:
                raise parser.error("NULL can only be compared with = or !=", value_tok)
        elif numeric and isinstance(v, str):
            raise parser.error(f"{node.entity}.{node.key} is a number; compare it with a number, "
                               f"e.g. {node.entity}.{node.key} > 0.9", value_tok)
        elif not numeric and not isinstance(v, str):
            raise parser.error(f"{node.entity}.{node.key} is text; quote the value, e.g. "
                               f"{node.entity}.{node.key} = '{_num_text(v)}'", value_tok)


def _num_text(v: float) -> str:
    return str(int(v)) if v == int(v) else str(v)


def parse_filter(text: str | None) -> Node | None:
    """Parse a filter string; ``None`` or blank means no filter."""
    if text is None or not text.strip():
        return None
    return _Parser(text).parse()


@dataclass(frozen=True, slots=True)
class OrderKey:
    entity: str
    key: str
    descending: bool


def parse_order_by(items: list[str] | tuple[str, ...] | str | None) -> list[OrderKey]:
    """Parse ``["metrics.acc DESC", "attributes.start_time"]`` (ASC by default)."""
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    out: list[OrderKey] = []
    for item in items:
        parser = _Parser(item)
        entity, key, _ = parser.field()
        descending = False
        if parser.keyword("asc", "desc"):
            descending = parser.take().text.lower() == "desc"
        if parser.tok.kind != "end":
            raise parser.error("Expected ASC, DESC or the end of the order clause")
        out.append(OrderKey(entity, key, descending))
    return out


# ── trees built elsewhere (the server's API takes them as JSON) ─────────────────────────

CANONICAL_ENTITIES = frozenset(ENTITIES.values())
CANONICAL_ATTRIBUTES = frozenset(ATTRIBUTES - {"run_name", "id"})
TEXT_OPS = frozenset({"like", "ilike", "not like", "not ilike"})
LIST_OPS = frozenset({"in", "not in"})
OPS = frozenset(COMPARE_OPS - {"<>"}) | TEXT_OPS | LIST_OPS


def check_tree(node: Node | None, order: tuple[OrderKey, ...] | list[OrderKey] = ()) -> None:
    """Check a filter tree and order keys that did not come from the parser (they come
    as JSON to the server): the same fields, operators, value types and limits the
    parser allows, else :class:`~mloop.errors.InvalidInputError` saying what is wrong."""
    counts = [0, 0]  # comparisons, IN values
    if node is not None:
        _check_node(node, 0, counts)
    for o in order:
        _check_field(o.entity, o.key, "order key")


def _bad(message: str) -> InvalidInputError:
    return InvalidInputError(f"Invalid search filter: {message}.")


def _check_field(entity: str, key: str, what: str) -> None:
    if entity not in CANONICAL_ENTITIES:
        raise _bad(f"{what} {entity!r}.{key!r}: the entity is one of "
                   f"{', '.join(sorted(CANONICAL_ENTITIES))}")
    if entity == "attributes" and key not in CANONICAL_ATTRIBUTES:
        raise _bad(f"{what} attributes.{key!r}: known attributes are "
                   f"{', '.join(sorted(CANONICAL_ATTRIBUTES))}")


def _check_node(node: Node, depth: int, counts: list[int]) -> None:
    if isinstance(node, BoolOp):
        if depth >= MAX_DEPTH:
            raise _bad(f"and/or groups nested more than {MAX_DEPTH} deep")
        if node.op not in ("and", "or") or not node.parts:
            raise _bad(f"a group is 'and' or 'or' of at least one part, not {node.op!r} of "
                       f"{len(node.parts)}")
        for part in node.parts:
            _check_node(part, depth + 1, counts)
        return
    _check_field(node.entity, node.key, "field")
    counts[0] += 1
    if counts[0] > MAX_TERMS:
        raise _bad(f"more than {MAX_TERMS} comparisons")
    if node.op not in OPS:
        raise _bad(f"unknown operator {node.op!r}; use one of {', '.join(sorted(OPS))}")
    name = f"{node.entity}.{node.key}"
    numeric = node.entity == "metrics" or (node.entity == "attributes"
                                           and node.key in NUMERIC_ATTRIBUTES)
    if node.op in LIST_OPS:
        if not isinstance(node.value, tuple) or not node.value:
            raise _bad(f"{name} {node.op.upper()} needs a non-empty list of values")
        counts[1] += len(node.value)
        if counts[1] > MAX_VALUES:
            raise _bad(f"more than {MAX_VALUES:,} values in IN lists")
        values: tuple[float | str | None, ...] = node.value
    elif isinstance(node.value, tuple):
        raise _bad(f"{name} {node.op} compares with one value, not a list")
    else:
        values = (node.value,)
    if node.op in TEXT_OPS and (numeric or not isinstance(node.value, str)):
        raise _bad(f"{name} {node.op.upper()} needs a text field and a quoted pattern")
    for v in values:
        if v is None:
            if node.op not in ("=", "!="):
                raise _bad(f"{name}: NULL can only be compared with = or !=")
        elif numeric and not isinstance(v, (int, float)):
            raise _bad(f"{name} is a number; compare it with a number")
        elif not numeric and not isinstance(v, str):
            raise _bad(f"{name} is text; compare it with a string")
