"""The run filter language: a tokenizer and a recursive-descent parser into a small AST.

Examples::

    metrics.auc > 0.9 and params.model = 'gbm'
    (tags.team = 'risk' or tags.team = "fraud") and status != 'FAILED'
    metrics.`val loss` < 0.3 and params.lr in (0.1, 0.01) and tags.note is not null

Every error names the column of the token it stopped at, so a long filter typed on a
command line can be fixed without guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from forgeml.errors import FilterSyntaxError

Entity = Literal["metric", "param", "tag", "attribute"]
Value = str | float | None

_ENTITY_PREFIXES: dict[str, Entity] = {
    "metrics": "metric",
    "metric": "metric",
    "params": "param",
    "param": "param",
    "tags": "tag",
    "tag": "tag",
    "attributes": "attribute",
    "attribute": "attribute",
    "attr": "attribute",
}

# Attribute names a filter may use, mapped to their canonical name.
ATTRIBUTES = {
    "id": "id",
    "run_id": "id",
    "name": "name",
    "run_name": "name",
    "status": "status",
    "user": "user",
    "start_time": "start_time",
    "end_time": "end_time",
    "parent_id": "parent_id",
    "git_sha": "git_sha",
    "host": "host",
}

COMPARISON_OPS = ("=", "!=", "<", "<=", ">", ">=", "like", "ilike", "not like", "not ilike")

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<backtick>`[^`]*`)
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<punct>[(),.])
  | (?P<word>[A-Za-z_][\w\-/:]*)
    """,
    re.VERBOSE,
)

_KEYWORDS = {"and", "or", "not", "in", "is", "null", "like", "ilike", "asc", "desc"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    position: int

    @property
    def keyword(self) -> str | None:
        lowered = self.text.lower()
        return lowered if self.kind == "word" and lowered in _KEYWORDS else None


@dataclass(frozen=True)
class Field:
    entity: Entity
    key: str

    def __str__(self) -> str:
        return f"{self.entity}s.{self.key}" if self.entity != "attribute" else self.key


@dataclass(frozen=True)
class Comparison:
    field: Field
    op: str  # one of COMPARISON_OPS, "in", "not in", "is null", "is not null"
    value: Value | tuple[Value, ...]


@dataclass(frozen=True)
class And:
    parts: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    part: Expr


Expr = Comparison | And | Or | Not


@dataclass(frozen=True)
class OrderBy:
    field: Field
    descending: bool


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise FilterSyntaxError(f"unexpected character {text[position]!r}", text, position)
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), position))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    # -- token helpers ------------------------------------------------------------------
    def peek(self, offset: int = 0) -> Token | None:
        at = self.index + offset
        return self.tokens[at] if at < len(self.tokens) else None

    def advance(self) -> Token:
        token = self.peek()
        if token is None:
            raise self.error("unexpected end of filter", len(self.text))
        self.index += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.keyword in words

    def error(self, message: str, position: int | None = None) -> FilterSyntaxError:
        if position is None:
            token = self.peek()
            position = token.position if token is not None else len(self.text)
        return FilterSyntaxError(message, self.text, position)

    def describe_next(self) -> str:
        token = self.peek()
        return "the end of the filter" if token is None else repr(token.text)

    # -- grammar ------------------------------------------------------------------------
    def parse_filter(self) -> Expr:
        expr = self.parse_or()
        if self.peek() is not None:
            raise self.error(f"expected 'and', 'or' or the end, found {self.describe_next()}")
        return expr

    def parse_or(self) -> Expr:
        parts = [self.parse_and()]
        while self.at_keyword("or"):
            self.advance()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def parse_and(self) -> Expr:
        parts = [self.parse_not()]
        while self.at_keyword("and"):
            self.advance()
            parts.append(self.parse_not())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def parse_not(self) -> Expr:
        if self.at_keyword("not"):
            self.advance()
            return Not(self.parse_not())
        token = self.peek()
        if token is not None and token.text == "(":
            self.advance()
            expr = self.parse_or()
            closing = self.peek()
            if closing is None or closing.text != ")":
                raise self.error(f"expected ')' to close the '(' at column {token.position + 1}")
            self.advance()
            return expr
        return self.parse_comparison()

    def parse_field(self) -> Field:
        token = self.peek()
        if token is None or token.kind not in ("word", "backtick") or token.keyword:
            raise self.error(
                "expected a field such as metrics.auc, params.model, tags.team or status, "
                f"found {self.describe_next()}"
            )
        self.advance()
        prefix = _ENTITY_PREFIXES.get(token.text.lower()) if token.kind == "word" else None
        dot = self.peek()
        if prefix is not None and dot is not None and dot.text == ".":
            self.advance()
            key_token = self.peek()
            if key_token is None or key_token.kind not in ("word", "backtick", "number"):
                raise self.error(f"expected a name after '{token.text}.'")
            self.advance()
            key = key_token.text.strip("`") if key_token.kind == "backtick" else key_token.text
            if prefix == "attribute":
                return Field("attribute", self.attribute_name(key, key_token.position))
            return Field(prefix, key)
        if prefix is not None:
            raise self.error(f"expected '.' and a name after {token.text!r}")
        return Field("attribute", self.attribute_name(token.text.strip("`"), token.position))

    def attribute_name(self, name: str, position: int) -> str:
        canonical = ATTRIBUTES.get(name.lower())
        if canonical is None:
            known = ", ".join(sorted(set(ATTRIBUTES.values())))
            raise self.error(
                f"unknown field {name!r} (use metrics.NAME, params.NAME, tags.NAME or one "
                f"of: {known})",
                position,
            )
        return canonical

    def parse_comparison(self) -> Comparison:
        field = self.parse_field()
        token = self.peek()
        if token is None:
            raise self.error(f"expected a comparison after {field}")
        if token.keyword == "is":
            self.advance()
            negated = self.at_keyword("not")
            if negated:
                self.advance()
            if not self.at_keyword("null"):
                raise self.error(f"expected 'null' after 'is', found {self.describe_next()}")
            self.advance()
            return Comparison(field, "is not null" if negated else "is null", None)
        negated = False
        if token.keyword == "not":
            self.advance()
            negated = True
            token = self.peek()
            if token is None or token.keyword not in ("in", "like", "ilike"):
                raise self.error(
                    f"expected 'in', 'like' or 'ilike' after 'not', found {self.describe_next()}"
                )
        if token.keyword == "in":
            self.advance()
            values = self.parse_value_list()
            return Comparison(field, "not in" if negated else "in", values)
        if token.keyword in ("like", "ilike"):
            self.advance()
            value = self.parse_value()
            if not isinstance(value, str):
                raise self.error(f"'{token.keyword}' needs a quoted pattern", token.position)
            return Comparison(field, f"not {token.keyword}" if negated else token.keyword, value)
        if token.kind != "op":
            raise self.error(
                f"expected an operator (=, !=, <, <=, >, >=, in, like, is) after {field}, "
                f"found {self.describe_next()}"
            )
        self.advance()
        op = {"==": "=", "<>": "!="}.get(token.text, token.text)
        operand = self.peek()
        value = self.parse_value()
        if field.entity == "metric" and not isinstance(value, float):
            raise self.error(
                f"metric {field.key!r} compares with a number",
                operand.position if operand else None,
            )
        return Comparison(field, op, value)

    def parse_value(self) -> Value:
        token = self.peek()
        if token is None or (token.kind not in ("number", "string") and token.keyword != "null"):
            raise self.error(f"expected a number or a quoted string, found {self.describe_next()}")
        self.advance()
        if token.kind == "number":
            return float(token.text)
        if token.kind == "string":
            quote = token.text[0]
            body = token.text[1:-1].replace(quote * 2, quote)
            return re.sub(r"\\(.)", r"\1", body)
        raise self.error(
            "use 'is null' or 'is not null' to test for a missing value", token.position
        )

    def parse_value_list(self) -> tuple[Value, ...]:
        opening = self.peek()
        if opening is None or opening.text != "(":
            raise self.error(f"expected '(' after 'in', found {self.describe_next()}")
        self.advance()
        values = [self.parse_value()]
        while True:
            token = self.peek()
            if token is not None and token.text == ",":
                self.advance()
                values.append(self.parse_value())
                continue
            if token is not None and token.text == ")":
                self.advance()
                return tuple(values)
            raise self.error(f"expected ',' or ')' in the list, found {self.describe_next()}")

    def parse_order(self) -> OrderBy:
        field = self.parse_field()
        descending = False
        if self.at_keyword("asc", "desc"):
            descending = self.advance().text.lower() == "desc"
        if self.peek() is not None:
            raise self.error(f"expected 'asc', 'desc' or the end, found {self.describe_next()}")
        return OrderBy(field, descending)


def parse_filter(text: str) -> Expr | None:
    """Parse a filter; an empty or blank filter means "every run" and returns None."""
    if not text or not text.strip():
        return None
    return _Parser(text).parse_filter()


def parse_order_by(text: str) -> OrderBy:
    """Parse one ``order_by`` entry such as ``"metrics.auc desc"``."""
    if not text or not text.strip():
        raise FilterSyntaxError("an order_by entry is empty", text, 0)
    return _Parser(text).parse_order()
