"""Value semantics of the query language: comparison, arithmetic, logic, display.

Values are int and float (numbers; `5 = 5.0`), str (strings and
'YYYY-MM-DD' dates, ordered by code point, which for ISO dates is date
order), bool (only produced by conditions, never stored) and None (NULL,
with SQL's three-valued logic).

Every operator is a plain function taking evaluated operands. Each starts
with a fast path for the common case (two values of the same type) and
falls back to `_slow_*` helpers that apply the NULL rules and raise a
`TahiryError` naming the values and the operator at fault. Python's bool is
an int subclass, so type tests here use `type(x) is int`, never
`isinstance`.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from engine.errors import TahiryError
from engine.language.lexer import MAX_NUMBER

# What an operator computes on (`<`, `+`, ...): a value of any of the types
# above, or anything an expression produced. Typed Any, not object: it tests the
# types itself (`kind = type(left)`, then `kind is int`), which a type
# checker cannot follow to `left < right`, and a cast per call would cost
# per row. The tests are the contract; the annotation only says "checked here".
Operand = Any

NUMBER_TYPES = (int, float)
_NONE = type(None)
# Numbers beyond the language's MAX_NUMBER are refused, results as literals.
# The same bounds as integers: int-to-int comparisons are the cheap ones.
_MAX_INT = int(MAX_NUMBER)
_MIN_INT = -_MAX_INT


# --------------------------------------------------------------------------
# Display


def _control_escapes() -> dict[int, str]:
    """Characters a terminal would obey instead of showing, each as a visible escape:
    line breaks and tabs as typed in a literal (`\\n`), other C0/C1 controls and DEL as
    `\\x1b`, and the bidirectional overrides, which reorder what follows on screen,
    as `\\u202e`."""
    escapes = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
    escapes.update({code: f"\\u{code:04x}" for code in (*range(0x202A, 0x202F),
                                                       *range(0x2066, 0x206A), 0x2028, 0x2029)})
    escapes.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
    return escapes


_CONTROL_ESCAPES = _control_escapes()
# A value shows as it is typed in a string literal (docs/LANGUAGE.md 1): a line
# break as `\n` and a backslash as `\\`, so the two never look alike.
_LITERAL_ESCAPES = {**_CONTROL_ESCAPES, ord("\\"): "\\\\"}


def literal_text(text: str) -> str:
    """`text` as typed inside a string literal, on one line: a table cell, a value quoted
    in an error (escaped like a literal, other controls made visible)."""
    return text.translate(_LITERAL_ESCAPES)


def visible_text(text: str) -> str:
    """`text` with its control characters made visible (a header, a name)."""
    return text.translate(_CONTROL_ESCAPES)


def format_number(value: float) -> str:
    """Integers without a decimal point, decimals in shortest positional form.

    `float` accepts an int too (the numeric tower of PEP 484).
    """
    if type(value) is int:
        return str(value)
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    return text


def json_number(value: float) -> float:
    """A number as JSON carries it: the value `format_number` shows, a whole one as an
    integer (-0.0 is 0, 2.0 is 2, 1.2345678901234568e20 is 123456789012345680000).

    The language has one number type (ISA); Python's float is how it is computed,
    not something a program reading the JSON should see.
    """
    if type(value) is float and value.is_integer():
        return int(format_number(value))
    return value


def format_value(value: Operand) -> str:
    """A value as a user reads it in a table cell: NULL, true/false, 2.5, text."""
    if value is None:
        return "NULL"
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return format_number(value)
    return str(value)


def describe_value(value: object) -> str:
    """A value as quoted inside an error sentence: strings in quotes."""
    if type(value) is str:
        return "'" + literal_text(value) + "'"
    if value is None:
        return "null"
    return format_value(value)


def type_name(value: object) -> str:
    """The user-facing name of a value's type, for error sentences."""
    kind = type(value)
    if kind is bool:
        return "booléen"
    if kind is int or kind is float:
        return "isa"
    if kind is str:
        return "lahatsoratra"
    if value is None:
        return "null"
    return "sanda"


# --------------------------------------------------------------------------
# Comparison


def _is_number(value: object) -> bool:
    kind = type(value)
    return kind is int or kind is float


def _comparison_error(op: str, left: object, right: object, reason: str) -> TahiryError:
    return TahiryError(
        f"Tsy azo ampitahaina amin'ny '{op}' ny {describe_value(left)} sy "
        f"{describe_value(right)} : {reason}.")


def _check_booleans(op: str, left: object, right: object) -> None:
    """A boolean may only be compared with a boolean (or NULL)."""
    if (type(left) is bool) != (type(right) is bool):
        raise _comparison_error(op, left, right, "booléen sy tsy booléen")


def _slow_equal(op: str, left: object, right: object) -> bool | None:
    # A number never equals a string: `=` is false, `!=` true (not unknown,
    # as documented since the original; ordering them is unknown, see below).
    if left is None or right is None:
        return None  # NULL is comparable with every type, and never equal
    _check_booleans(op, left, right)
    if type(left) is bool:
        return left == right
    if _is_number(left) and _is_number(right):
        return left == right
    if type(left) is str and type(right) is str:
        return left == right
    return False  # number against string: never equal


def eq(left: object, right: object) -> bool | None:
    """`=`: NULL if either is NULL; number vs string is false; 5 = 5.0."""
    if type(left) is type(right) and left is not None:
        return left == right
    return _slow_equal("=", left, right)


def ne(left: object, right: object) -> bool | None:
    """`!=`: NULL if either is NULL; number vs string is true."""
    if type(left) is type(right) and left is not None:
        return left != right
    result = _slow_equal("!=", left, right)
    return None if result is None else not result


def _slow_order(op: str, left: Operand, right: Operand) -> bool | None:
    """Validate operands of an ordering operator whose fast path did not apply.

    Returns None when the result is NULL, True when a plain Python comparison
    is valid, and raises when the types cannot be ordered (booleans).

    A number against a string (or date) is NULL, unknown, like a comparison
    with NULL (LANGUAGE.md 4, "Mixed domains"): in a column of a hybrid
    domain such as `ISA(0,20):TANISA('ABS')`, `naoty > 10` is simply not
    true for the 'ABS' rows, instead of failing the whole query.
    """
    if left is None or right is None:
        return None
    _check_booleans(op, left, right)
    if type(left) is bool:
        raise _comparison_error(op, left, right, "tsy azo alahatra ny booléen")
    if _is_number(left) and _is_number(right):
        return True
    if type(left) is str and type(right) is str:
        return True
    return None  # a number and a string: unknown


def lt(left: Operand, right: Operand) -> bool | None:
    kind = type(left)
    if kind is type(right) and (kind is int or kind is str or kind is float):
        return left < right
    return None if _slow_order("<", left, right) is None else left < right


def le(left: Operand, right: Operand) -> bool | None:
    kind = type(left)
    if kind is type(right) and (kind is int or kind is str or kind is float):
        return left <= right
    return None if _slow_order("<=", left, right) is None else left <= right


def gt(left: Operand, right: Operand) -> bool | None:
    kind = type(left)
    if kind is type(right) and (kind is int or kind is str or kind is float):
        return left > right
    return None if _slow_order(">", left, right) is None else left > right


def ge(left: Operand, right: Operand) -> bool | None:
    kind = type(left)
    if kind is type(right) and (kind is int or kind is str or kind is float):
        return left >= right
    return None if _slow_order(">=", left, right) is None else left >= right


# --------------------------------------------------------------------------
# Arithmetic


def _arithmetic_error(op: str, left: object, right: object) -> TahiryError:
    bad = left if not (_is_number(left) or left is None) else right
    return TahiryError(
        f"Tsy azo atao ny {describe_value(left)} {op} {describe_value(right)} : "
        f"isa ihany no azo kajiana, ary {type_name(bad)} ny {describe_value(bad)}.")


def _overflow_error(op: str, left: object, right: object) -> TahiryError:
    return TahiryError(
        f"Lehibe loatra ny valin'ny {_short(left)} {op} {_short(right)}.")


def _short(value: object, limit: int = 40) -> str:
    """A value for an error sentence, a long number shortened (it may have 300 digits)."""
    text = describe_value(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _finite(value: float, op: str, left: object, right: object) -> float:
    if math.isfinite(value):
        return value
    raise _overflow_error(op, left, right)


def _check_arithmetic(op: str, left: object, right: object) -> bool:
    """True when the result is NULL; raises when an operand is not a number."""
    left_ok = left is None or _is_number(left)
    right_ok = right is None or _is_number(right)
    if not (left_ok and right_ok):
        raise _arithmetic_error(op, left, right)
    return left is None or right is None


def add(left: Operand, right: Operand) -> object:
    if type(left) is int and type(right) is int:
        total = left + right
        if _MIN_INT <= total <= _MAX_INT:
            return total
        raise _overflow_error("+", left, right)
    if _check_arithmetic("+", left, right):
        return None
    try:
        return _finite(left + right, "+", left, right)
    except OverflowError:  # an integer too large to become a float
        raise _overflow_error("+", left, right) from None


def sub(left: Operand, right: Operand) -> object:
    if type(left) is int and type(right) is int:
        difference = left - right
        if _MIN_INT <= difference <= _MAX_INT:
            return difference
        raise _overflow_error("-", left, right)
    if _check_arithmetic("-", left, right):
        return None
    try:
        return _finite(left - right, "-", left, right)
    except OverflowError:
        raise _overflow_error("-", left, right) from None


def mul(left: Operand, right: Operand) -> object:
    if type(left) is int and type(right) is int:
        product = left * right
        if _MIN_INT <= product <= _MAX_INT:
            return product
        raise _overflow_error("*", left, right)
    if _check_arithmetic("*", left, right):
        return None
    try:
        return _finite(left * right, "*", left, right)
    except OverflowError:
        raise _overflow_error("*", left, right) from None


def div(left: Operand, right: Operand) -> object:
    """Exact division: 7 / 2 = 3.5, 6 / 3 = 2 (an int); `null / 0` is NULL."""
    if _check_arithmetic("/", left, right):
        return None
    if right == 0:
        raise TahiryError(
            f"Tsy azo zaraina amin'ny aotra : {describe_value(left)} / {describe_value(right)}.")
    if type(left) is int and type(right) is int:
        quotient, remainder = divmod(left, right)
        if remainder == 0:
            return quotient
    try:
        return _finite(left / right, "/", left, right)
    except OverflowError:
        raise _overflow_error("/", left, right) from None


def neg(value: Operand) -> object:
    """Unary minus."""
    kind = type(value)
    if kind is int or kind is float:
        return -value
    if value is None:
        return None
    raise TahiryError(
        f"Tsy azo atao ny -{describe_value(value)} : isa ihany no azo kajiana, "
        f"ary {type_name(value)} ny {describe_value(value)}.")


# --------------------------------------------------------------------------
# Three-valued logic


def _logic_error(op: str, value: object) -> TahiryError:
    return TahiryError(
        f"Ny '{op}' dia mila booléen, fa {type_name(value)} ny {describe_value(value)}.")


def check_boolean(value: object, op: str) -> bool | None:
    """The value itself when it is a boolean or NULL; an error otherwise."""
    if value is None or type(value) is bool:
        return value
    raise _logic_error(op, value)


def and3(left: object, right: object) -> bool | None:
    """`ary`: false if either is false, NULL if either is NULL, else true."""
    if left is True and right is True:
        return True
    check_boolean(left, "ary")
    check_boolean(right, "ary")
    if left is False or right is False:
        return False
    return None


def or3(left: object, right: object) -> bool | None:
    """`na`: true if either is true, NULL if either is NULL, else false."""
    if left is False and right is False:
        return False
    check_boolean(left, "na")
    check_boolean(right, "na")
    if left is True or right is True:
        return True
    return None


def not3(value: object) -> bool | None:
    """`!`: NULL stays NULL."""
    if value is True:
        return False
    if value is False:
        return True
    if value is None:
        return None
    raise _logic_error("!", value)


# --------------------------------------------------------------------------
# Ordering (alaharo, min, max)


def sortable_kind(values) -> str | None:
    """'number', 'string', 'mixed' or 'boolean' for the non-NULL values; None if empty.

    'mixed' is numbers and strings together (a column of a hybrid domain
    such as `ISA(0,20):TANISA('ABS')`): they sort by `mixed_key`, numbers
    first. Raises when booleans are mixed with anything else.
    """
    kinds = {type(v) for v in values}
    kinds.discard(_NONE)
    if not kinds:
        return None
    if kinds <= {int, float}:
        return "number"
    if kinds == {str}:
        return "string"
    if kinds == {bool}:
        return "boolean"
    if kinds <= {int, float, str}:
        return "mixed"
    names = sorted({_KIND_NAMES.get(k, "sanda") for k in kinds})
    raise TahiryError(
        "Tsy azo alahatra miaraka ny sanda " + " sy ".join(names) + ".")


_KIND_NAMES = {int: "isa", float: "isa", str: "lahatsoratra", bool: "booléen"}


def mixed_key(value: int | float | str) -> tuple[bool, int | float | str]:
    """The sort key of numbers and strings sorted together: every number, then
    every string (SQLite's order; LANGUAGE.md 4, "Mixed domains")."""
    return type(value) is str, value
