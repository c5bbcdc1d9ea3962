"""Kconfig values (``sdkconfig``, ``sdkconfig.json``, Zephyr ``.config``) and the ``if:`` conditions of manifests.

Condition grammar (the subset esp-idf-sbom accepts, precedence as in Linux ``scripts/kconfig/parser.y``)::

    expr   := or
    or     := and ('||' and)*
    and    := eq ('&&' eq)*
    eq     := cmp (('=' | '!=') cmp)*
    cmp    := unary (('<' | '>' | '<=' | '>=') unary)*
    unary  := '!' unary | '(' expr ')' | SYMBOL | NUMBER | HEX | "STRING"

Semantics: an unknown symbol is ``n`` (false); comparisons between values of different types are false; a
non-boolean operand of ``!``, ``&&`` or ``||`` counts as false.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from medfw.errors import ManifestError

__all__ = ["KconfigValue", "evaluate", "parse_sdkconfig", "values_from_json"]

KconfigValue = bool | int | str

_TOKEN_RE = re.compile(
    r"""\s*(?:(?P<op>\|\||&&|!=|<=|>=|[!=<>()])|(?P<hex>0[xX][0-9a-fA-F]+)|(?P<num>-?\d+)"""
    r"""|(?P<str>"(?:[^"\\]|\\.)*")|(?P<sym>[A-Za-z_][A-Za-z0-9_]*))"""
)
_LINE_RE = re.compile(r"^(?:CONFIG_)?([A-Za-z0-9_]+)=(.*)$")
_UNSET_RE = re.compile(r"^#\s*(?:CONFIG_)?([A-Za-z0-9_]+) is not set\s*$")
_MAX_EXPR = 4096


def _value(raw: str) -> KconfigValue:
    raw = raw.strip()
    if raw == "y":
        return True
    if raw == "n":
        return False
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", raw):
        return int(raw, 16)
    if re.fullmatch(r"-?\d+", raw):
        return int(raw)
    return raw


def parse_sdkconfig(text: str) -> dict[str, KconfigValue]:
    """Parse ``CONFIG_FOO=y`` lines (ESP-IDF ``sdkconfig``, Zephyr ``.config``); keys lose the ``CONFIG_`` prefix."""
    values: dict[str, KconfigValue] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        unset = _UNSET_RE.match(line)
        if unset:
            values[unset.group(1)] = False
            continue
        if not line or line.startswith("#"):
            continue
        m = _LINE_RE.match(line)
        if m:
            values[m.group(1)] = _value(m.group(2))
    return values


def values_from_json(data: object, *, path: str) -> dict[str, KconfigValue]:
    """Take the values of an ESP-IDF ``build/config/sdkconfig.json`` (an object of symbol → bool/int/str)."""
    if not isinstance(data, dict):
        raise ManifestError("sdkconfig.json must be a JSON object", path=path)
    out: dict[str, KconfigValue] = {}
    for k, v in data.items():
        if isinstance(v, bool | int | str):
            out[str(k)] = v
    return out


class _Parser:
    def __init__(self, text: str, values: Mapping[str, KconfigValue], path: str | None) -> None:
        self.values = values
        self.path = path
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN_RE.match(text, pos)
            if m is None or m.end() == pos:
                self.fail(f"unexpected character {text[pos:].strip()[:1]!r}")
            assert m is not None
            kind = m.lastgroup
            assert kind is not None
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def fail(self, why: str) -> None:
        raise ManifestError(f"invalid 'if' condition {self.text!r}: {why}", path=self.path, field="if")

    def peek(self) -> str | None:
        if self.i < len(self.tokens) and self.tokens[self.i][0] == "op":
            return self.tokens[self.i][1]
        return None

    def parse(self) -> KconfigValue:
        if not self.tokens:
            self.fail("empty expression")
        v = self.or_()
        if self.i != len(self.tokens):
            self.fail(f"unexpected {self.tokens[self.i][1]!r}")
        return v

    @staticmethod
    def _bool(v: KconfigValue) -> bool:
        return v if isinstance(v, bool) else False

    def or_(self) -> KconfigValue:
        v = self.and_()
        while self.peek() == "||":
            self.i += 1
            rhs = self.and_()
            v = self._bool(v) or self._bool(rhs)
        return v

    def and_(self) -> KconfigValue:
        v = self.eq()
        while self.peek() == "&&":
            self.i += 1
            rhs = self.eq()
            v = self._bool(v) and self._bool(rhs)
        return v

    @staticmethod
    def _compare(op: str, a: KconfigValue, b: KconfigValue) -> bool:
        if type(a) is not type(b):
            return False
        if op == "=":
            return a == b
        if op == "!=":
            return a != b
        if isinstance(a, bool) or isinstance(b, bool):
            return False
        if op == "<":
            return a < b  # type: ignore[operator]
        if op == ">":
            return a > b  # type: ignore[operator]
        if op == "<=":
            return a <= b  # type: ignore[operator]
        return a >= b  # type: ignore[operator]

    def eq(self) -> KconfigValue:
        v = self.cmp()
        while self.peek() in ("=", "!="):
            op = self.tokens[self.i][1]
            self.i += 1
            v = self._compare(op, v, self.cmp())
        return v

    def cmp(self) -> KconfigValue:
        v = self.unary()
        while self.peek() in ("<", ">", "<=", ">="):
            op = self.tokens[self.i][1]
            self.i += 1
            v = self._compare(op, v, self.unary())
        return v

    def unary(self) -> KconfigValue:
        if self.i >= len(self.tokens):
            self.fail("expression ends too early")
        kind, tok = self.tokens[self.i]
        self.i += 1
        if kind == "op":
            if tok == "!":
                return not self._bool(self.unary())
            if tok == "(":
                v = self.or_()
                if self.peek() != ")":
                    self.fail("missing ')'")
                self.i += 1
                return v
            self.fail(f"unexpected {tok!r}")
        if kind == "hex":
            return int(tok, 16)
        if kind == "num":
            return int(tok)
        if kind == "str":
            return tok[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if tok in ("true", "True"):
            return True
        if tok in ("false", "False"):
            return False
        name = tok[7:] if tok.startswith("CONFIG_") else tok
        return self.values.get(name, False)


def evaluate(expression: str, values: Mapping[str, KconfigValue], *, path: str | None = None) -> bool:
    """Evaluate a manifest ``if:`` condition against Kconfig ``values``.

    Raises:
        ManifestError: the expression does not parse (names the file and the ``if`` key).
    """
    if not isinstance(expression, str):
        raise ManifestError("'if' condition must be a string", path=path, field="if")
    if len(expression) > _MAX_EXPR:
        raise ManifestError("'if' condition is too long", path=path, field="if")
    try:
        result = _Parser(expression, values, path).parse()
    except RecursionError:
        raise ManifestError("'if' condition is nested too deeply", path=path, field="if") from None
    return result if isinstance(result, bool) else False
