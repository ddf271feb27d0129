"""DB-API `qmark` parameters: Python values turned into Tahiry literals.

`bind(sql, params)` replaces each `?` outside string literals and comments
by the literal of the matching parameter. Literals are built so that no
value can change the statement's structure: strings are quoted with `'`,
with quotes doubled and backslashes escaped (the language processes
backslash escapes inside strings).
"""

from __future__ import annotations

import datetime
import decimal
import math
from collections.abc import Sequence

from nodes.errors import NodeError


class ParameterError(NodeError, ValueError):
    """A parameter cannot be bound (wrong count or unsupported type)."""


def literal(value: object) -> str:
    """The Tahiry literal for one Python value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        raise ParameterError("booleans cannot be stored in Tahiry; pass 1/0 or a string")
    if isinstance(value, int):
        return _signed(str(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ParameterError(f"{value!r} has no Tahiry literal")
        return _decimal_text(decimal.Decimal(repr(value)))
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ParameterError(f"{value!r} has no Tahiry literal")
        return _decimal_text(value)
    if isinstance(value, datetime.datetime):
        raise ParameterError("Tahiry has dates (DATY) but no timestamps; pass a datetime.date")
    if isinstance(value, datetime.date):
        return "'" + value.isoformat() + "'"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    raise ParameterError(f"cannot bind a parameter of type {type(value).__name__}")


def _decimal_text(number: decimal.Decimal) -> str:
    # The language has no exponent notation and no `1.`: write plain digits.
    text = format(number, "f")
    if "." not in text:
        text += ".0"
    return _signed(text)


def _signed(text: str) -> str:
    # Parenthesised so that `a-?` never becomes the comment `a--5`.
    return "(" + text + ")" if text.startswith("-") else text


def bind(sql: str, params: Sequence[object] | None) -> str:
    """`sql` with each placeholder `?` replaced by its parameter's literal."""
    if params is None:
        params = ()
    if isinstance(params, (str, bytes)) or not isinstance(params, Sequence):
        raise ParameterError("parameters must be a sequence (paramstyle is qmark: '?')")
    positions = placeholder_positions(sql)
    if len(positions) != len(params):
        raise ParameterError(
            f"the statement has {len(positions)} placeholder(s) but {len(params)} parameter(s) were given")
    if not positions:
        return sql
    pieces: list[str] = []
    start = 0
    for position, value in zip(positions, params, strict=True):
        pieces.append(sql[start:position])
        pieces.append(literal(value))
        start = position + 1
    pieces.append(sql[start:])
    return "".join(pieces)


def placeholder_positions(sql: str) -> list[int]:
    """Offsets of every `?` that is outside strings and comments."""
    positions: list[int] = []
    index, length = 0, len(sql)
    while index < length:
        char = sql[index]
        if char in "'\"":
            index = _skip_string(sql, index)
        elif sql.startswith("--", index) or sql.startswith("//", index):
            end = sql.find("\n", index)
            index = length if end < 0 else end + 1
        else:
            if char == "?":
                positions.append(index)
            index += 1
    return positions


def _skip_string(sql: str, start: int) -> int:
    quote = sql[start]
    index = start + 1
    while index < len(sql):
        char = sql[index]
        if char == "\\":
            index += 2
        elif char == quote:
            if sql.startswith(quote, index + 1):
                index += 2
            else:
                return index + 1
        else:
            index += 1
    return len(sql)
