"""Fast path for `manampia ao@ T [(cols)] sanda (...), ...` made only of literals.

Bulk inserts are long (a 100k-row statement is megabytes) and their rows
are nearly always plain literals. Running them through the LALR parser
costs dozens of Python calls per value; here compiled regular expressions
check each row's shape and pick its values out, then a few lines of Python
convert them exactly as the lexer and grammar would.

Two tiers: rows whose text is also valid JSON once `(`, `)` and `'` become
`[`, `]` and `"` (canonical numbers, strings without quotes, backslashes,
parentheses or control characters, lower-case `null`, plain spaces) are
checked by one regular expression and decoded by the C JSON parser, which
converts numbers with the same `int()` / `float()` the lexer uses; any
other row shape goes through a per-row regular expression and Python.

The contract: `parse_literal_insert(text)` returns the very AST the grammar
builds for `text`, or None whenever it is not sure (an expression, a
comment, a `#`, a keyword where a name goes, a value the lexer would refuse,
an unusual character...). It never raises: on None the caller runs the full
parser, which then reports any error with its usual message and position.
Everything it accepts is therefore something the grammar accepts too; the
differential tests in tests/engine/test_parser_literal_rows.py check both
directions on generated statements.
"""

from __future__ import annotations

import json
import re

from engine.language import ast
from engine.language.lexer import KEYWORDS, MAX_NUMBER, decode_string

# Exactly the lexer's ignored characters: `\s` would also accept characters
# (U+00A0, U+001C...) that the lexer rejects.
_SPACE = r"[ \t\r\n\f\v]*+"
_WORD = r"[^\W\d]\w*+"  # possessive: a word is never split into two
_NUMBER = r"[0-9]++(?:\.[0-9]++)?+"
_STRINGS = (r"'[^'\\]*+(?:(?:''|\\.)[^'\\]*+)*+'", r'"[^"\\]*+(?:(?:""|\\.)[^"\\]*+)*+"')
_VALUE = rf"(?:-{_SPACE}{_NUMBER}|{_NUMBER}|{_STRINGS[0]}|{_STRINGS[1]}|{_WORD})"

# `manampia ao [@] T [( [names] )] sanda`; the words are checked in Python
# (keywords compare by str.lower(), as the lexer does, not by re.IGNORECASE).
_PREFIX = re.compile(
    rf"{_SPACE}({_WORD}){_SPACE}({_WORD}){_SPACE}(@?){_SPACE}({_WORD}){_SPACE}"
    rf"(?:\(([^()'\"]*)\){_SPACE})?({_WORD})",
    re.DOTALL)
_NAME = re.compile(rf"{_SPACE}({_WORD}){_SPACE}")
# One row: the parentheses and a comma-separated list of at least one value,
# each value followed by spaces and then `,` or `)` (so `1.`, `2x`, `'a'b`,
# `null.x` or `5 * 2` never match).
_ROW = re.compile(rf"{_SPACE}\({_SPACE}{_VALUE}{_SPACE}(?:,{_SPACE}{_VALUE}{_SPACE})*+\)", re.DOTALL)
# The values inside a matched row: (minus, number, single-quoted body,
# double-quoted body, word).
_ROW_VALUE = re.compile(
    rf"(-)?+{_SPACE}({_NUMBER})|'((?:[^'\\]|''|\\.)*+)'|\"((?:[^\"\\]|\"\"|\\.)*+)\"|({_WORD})",
    re.DOTALL)
_BETWEEN_ROWS = re.compile(rf"{_SPACE},")
_END = re.compile(rf"{_SPACE}(?:;{_SPACE})?\Z")


# The JSON tier. Integer parts are capped at 100 digits (float() of a longer
# one may overflow to inf, which the lexer refuses); leading zeros are not JSON.
_JSON_SPACE = r"[ \t\r\n]*+"
_JSON_NUMBER = r"-?+(?:0|[1-9][0-9]{0,99}+)(?:\.[0-9]++)?+"
_JSON_STRING = r"""'[^'"\\()\x00-\x1f]*+'|"[^'"\\()\x00-\x1f]*+\""""
_JSON_VALUE = rf"(?:{_JSON_NUMBER}|{_JSON_STRING}|null)"
_JSON_ROW = rf"\({_JSON_SPACE}{_JSON_VALUE}{_JSON_SPACE}(?:,{_JSON_SPACE}{_JSON_VALUE}{_JSON_SPACE})*+\)"
_JSON_ROWS = re.compile(
    rf"{_JSON_SPACE}({_JSON_ROW}(?:{_JSON_SPACE},{_JSON_SPACE}{_JSON_ROW})*+)"
    rf"{_JSON_SPACE}(?:;{_JSON_SPACE})?")
_TO_JSON = str.maketrans({"(": "[", ")": "]", "'": '"'})


class _NotLiteral(Exception):
    """This statement needs the full parser."""


def parse_literal_insert(text: str, json_tier: bool = True) -> ast.Insert | None:
    """The Insert that `text` means if it is a literal-rows insert; None if unsure.

    `json_tier=False` skips the JSON tier (tests compare the two tiers).
    """
    prefix = _PREFIX.match(text)
    if prefix is None:
        return None
    keyword, into, _at, table, names, values_word = prefix.groups()
    if (keyword.lower() != "manampia" or into.lower() != "ao" or values_word.lower() != "sanda"
            or table.lower() in KEYWORDS):
        return None
    columns = None
    if names is not None and names.strip(" \t\r\n\f\v"):
        columns = _column_names(names)
        if columns is None:
            return None
    rows = _json_rows(text, prefix.end()) if json_tier else None
    if rows is not None:
        return ast.Insert(table, columns, rows=rows)
    try:
        rows = _rows(text, prefix.end())
    except _NotLiteral:
        return None
    if rows is None:
        return None
    return ast.Insert(table, columns, rows=rows)


def _column_names(names: str) -> tuple[str, ...] | None:
    columns = []
    for part in names.split(","):
        match = _NAME.fullmatch(part)
        if match is None or match.group(1).lower() in KEYWORDS:
            return None
        columns.append(match.group(1))
    return tuple(columns)


def _json_rows(text: str, position: int) -> tuple[tuple[ast.Literal, ...], ...] | None:
    match = _JSON_ROWS.fullmatch(text, position)
    if match is None:
        return None
    try:
        values = json.loads("[" + match.group(1).translate(_TO_JSON) + "]")
    except ValueError:  # e.g. an integer with more digits than int() converts
        return None
    literal = ast.Literal
    return tuple([tuple(map(literal, row)) for row in values])


def _rows(text: str, position: int) -> tuple[tuple[ast.Literal, ...], ...] | None:
    row_match = _ROW.match
    values_in = _ROW_VALUE.findall
    between = _BETWEEN_ROWS.match
    literal = _literal
    rows = []
    while True:
        row = row_match(text, position)
        if row is None:
            return None
        rows.append(tuple([literal(*value) for value in values_in(text, row.start(), row.end())]))
        position = row.end()
        comma = between(text, position)
        if comma is None:
            break
        position = comma.end()
    if _END.match(text, position) is None:
        return None
    return tuple(rows)


def _literal(minus: str, number: str, single: str, double: str, word: str) -> ast.Literal:
    """One value as the grammar builds it (see the lexer's NUMBER and STRING rules)."""
    if number:
        try:
            value = float(number) if "." in number else int(number)
        except ValueError:  # more digits than Python converts: the lexer refuses it
            raise _NotLiteral from None
        if value > MAX_NUMBER:  # the lexer refuses it (infinite, or an integer beyond)
            raise _NotLiteral
        return ast.Literal(-value if minus else value)
    if word:
        if word.lower() != "null":
            raise _NotLiteral
        return ast.Literal(None)
    if double:
        return ast.Literal(decode_string(double, '"'))
    return ast.Literal(decode_string(single, "'"))  # also '' and "": both are ""
