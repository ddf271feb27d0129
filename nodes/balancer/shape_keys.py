"""A statement's shape key, the statement cache's own, in a few C passes for the usual texts.

The balancer classifies every statement by its shape
(nodes/balancer/classifier.py), the key `shape_key_of` gives
(engine/language/statement_cache.py): the text with each number and string
literal replaced by a marker of its kind. That scan costs one match and a
few lines of Python per literal: for a one-row insert (five literals, two of
them strings) it was the largest part of the balancer's Python work, and
why a relayed insert cost it more than a read.

`shape_key(text)` gives exactly `shape_key_of(text)`. A *plain* text (ASCII,
no double quote, no backslash, no comment marker `--` / `//`, no doubled
quote `''`, no NUL, every single quote closing a string, no run of 300
digits, at most `MAX_SHAPE_CHARS` long) is keyed by three substitutions
made in C; any other text is left to `shape_key_of`. In a plain text the
engine's scan reduces to:

- a string literal is `'[^']*'` (no escape, no doubled quote inside; quotes
  are never part of a word, and no comment can hide one);
- a number is a maximal digit run (with `.digits`: a float) that does not
  continue a word: the engine's scan skips whole words, digits included,
  and in ASCII a word is what `[A-Za-z0-9_]` continues;
- every value converts (the lexer refuses only numbers beyond the float
  range, hence the 300 digits), so the key is never refused.

tests/nodes/test_classifier.py checks the two against each other on random
texts built to hit these edges, so a change to the engine's scan shows
there.
"""

from __future__ import annotations

import re

from engine.language.statement_cache import MAX_SHAPE_CHARS, shape_key_of

# The engine's markers: "\0" + kind + "\0" (kinds int, float, string' and string").
_STRING_MARK = "\0string'\0"
_FLOAT_MARK = "\0float\0"
_INT_MARK = "\0int\0"

_STRING = re.compile(r"'[^']*'")
_FLOAT = re.compile(r"(?<![A-Za-z0-9_])[0-9]+\.[0-9]+")
_INT = re.compile(r"(?<![A-Za-z0-9_])[0-9]+")
_LONG_NUMBER = re.compile(r"[0-9]{300}")


def shape_key(text: str) -> str | None:
    """`shape_key_of(text)`: the text's shape, None when it must be parsed (see the module
    docstring)."""
    if (len(text) > MAX_SHAPE_CHARS or not text.isascii() or '"' in text or "\\" in text
            or "--" in text or "//" in text or "''" in text or "\0" in text):
        return shape_key_of(text)
    key, strings = _STRING.subn(_STRING_MARK, text)
    if text.count("'") != 2 * strings or _LONG_NUMBER.search(text) is not None:
        return shape_key_of(text)   # a lone quote, or a number the lexer may refuse
    if "." in key:
        key = _FLOAT.sub(_FLOAT_MARK, key)
    key = _INT.sub(_INT_MARK, key)
    return key if "\0" in key else None   # (no literal: the parser's own cache serves it)
