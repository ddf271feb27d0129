"""The catalogue of the engine's error messages, and their English translation.

Every error the engine can raise has one entry here: a stable `code`, its
Malagasy template (the wire text of docs/LANGUAGE.md, unchanged) and an
English template. The wire always carries the Malagasy text; a client that
wants English (`--lang en`) calls `translate(text, "en")` on what it got.

Templates use `{name}` for a part copied as it is (a name, a value, a
number) and two typed forms:
- `{name:sentence}`: a part that is itself a catalogue text (the detail of a
  syntax error, the error of an aggregate's argument), translated in turn;
- `{name:word}`: a word of the language's vocabulary (a type or object
  kind: `isa`, `lahatsoratra`, `tabilao`, ...), translated by `WORDS`.
A placeholder used twice must match the same text twice.

The hints of docs/LANGUAGE.md 5b ("did you mean") are entries too, of kind
`hint`: sentences a message may end with; `translate` peels them off the
end and translates each.

Nothing here runs on the success path: `translate` is for clients, and the
engine builds its texts with `text(code, ...)` only when it raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from engine.errors import ERROR_PREFIX, STORAGE_FAULT_MARKER


@dataclass(frozen=True)
class Message:
    code: str       # stable, for clients and tests: 'no_database', 'syntax', ...
    malagasy: str   # the wire template
    english: str
    kind: str = "error"  # 'error'; 'detail' (inside a syntax error); 'hint'


# Vocabulary words that appear as placeholders' values.
WORDS = {
    "isa": "number", "lahatsoratra": "text", "booléen": "boolean", "null": "null",
    "sanda": "value", "tabilao": "table", "jery": "view", "efitra": "domain",
    "tahiry": "database", "fiovana": "changes",
    "isa sy lahatsoratra tsy azo alahatra": "a number and a text cannot be ordered",
    "booléen sy tsy booléen": "a boolean and a non-boolean",
    "tsy azo alahatra ny booléen": "booleans cannot be ordered",
}

_M = Message

CATALOGUE: tuple[Message, ...] = (
    # ---------------------------------------------------------------- databases, objects
    _M("no_database", "Tsy nisafidy tahiry ianao", "No database selected (use ampiasao DB first)"),
    _M("no_such_database", "Tsy misy ny tahiry : {name}", "No such database: {name}"),
    _M("database_exists", "Ny tahiry ({name}) dia efa misy", "The database ({name}) already exists"),
    _M("table_exists", "Ny tabilao : {name} dia efa misy", "The table {name} already exists"),
    _M("view_exists", "Ny jery : {name} dia efa misy", "The view {name} already exists"),
    _M("domain_exists", "Ny efitra : {name} dia efa misy", "The domain {name} already exists"),
    _M("no_such_table", "La table {database}.{name} n'as pas été trouvé",
       "Table {database}.{name} not found"),
    _M("no_such_column", "Le champ '{name}' n'existe pas dans la relation.",
       "Column '{name}' does not exist in the relation."),
    _M("ambiguous_column",
       "Le champ '{name}' est ambigu. Il apparaît {count} fois dans la relation.",
       "Column '{name}' is ambiguous: it appears {count} times in the relation."),
    # ---------------------------------------------------------------- syntax
    _M("syntax", "Diso ny fanoratana (syntax) amin'ny andalana {line}, tsanganana {column} : "
       "{detail:sentence}",
       "Syntax error at line {line}, column {column}: {detail:sentence}"),
    _M("syntax_expected", "nandrasana {expected} fa '{found}' no hita",
       "expected {expected} but found '{found}'", "detail"),
    _M("syntax_expected_end", "nandrasana {expected} fa tapitra ny fanambarana",
       "expected {expected} but the statement ended", "detail"),
    # ---------------------------------------------------------------- hints
    _M("hint_did_you_mean", " Angamba '{suggestion}' no tianao hosoratana (fa tsy '{word}')?",
       " Did you mean '{suggestion}' (not '{word}')?", "hint"),
    _M("hint_english_keyword", " Amin'ny Tahiry, '{keyword}' no ilazana ny '{word}'.",
       " In Tahiry, '{word}' is written '{keyword}'.", "hint"),
)


def text(code: str, **values: object) -> str:
    """The Malagasy sentence of `code` with `values` filled in (the wire text)."""
    return _FIELD.sub(lambda m: str(values[m.group(1)]), by_code()[code].malagasy)


def english(code: str, **values: object) -> str:
    """The English sentence of `code` with `values` filled in (no translation of parts)."""
    return _FIELD.sub(lambda m: str(values[m.group(1)]), by_code()[code].english)


def translate(text: str, lang: str) -> str:
    """`text`, an error as the wire carries it, in `lang` ("en" or "mg").

    Unchanged when `lang` is "mg" (or unknown) or the text is not recognised.
    The `Hadisoana : ` prefix becomes `Error: `; a storage fault's marker
    (` [storage:read]`) is kept as it is, for the same reasons as on the wire.
    """
    if lang != "en":
        return text
    body, prefix = text, ""
    if body.startswith(ERROR_PREFIX):
        body, prefix = body[len(ERROR_PREFIX):], "Error: "
    marker = ""
    start = body.rfind(STORAGE_FAULT_MARKER)
    if start >= 0 and body.endswith("]"):
        body, marker = body[:start], body[start:]
    translated = _translate_sentence(body, with_hints=True)
    if translated is None:
        return text
    return prefix + translated + marker


# ---------------------------------------------------------------- matching

_FIELD = re.compile(r"\{(\w+)(?::(\w+))?\}")


@dataclass(frozen=True)
class _Pattern:
    message: Message
    regex: re.Pattern
    kinds: dict[str, str]   # placeholder -> '', 'sentence' or 'word'


@lru_cache(maxsize=1)
def by_code() -> dict[str, Message]:
    """The catalogue keyed by code."""
    return {message.code: message for message in CATALOGUE}


def _compile(message: Message) -> _Pattern:
    parts, kinds, position = [], {}, 0
    for field in _FIELD.finditer(message.malagasy):
        parts.append(re.escape(message.malagasy[position:field.start()]))
        name, kind = field.group(1), field.group(2) or ""
        parts.append(f"(?P={name})" if name in kinds else f"(?P<{name}>.+?)")
        kinds[name] = kind
        position = field.end()
    parts.append(re.escape(message.malagasy[position:]))
    return _Pattern(message, re.compile("".join(parts), re.DOTALL), kinds)


@lru_cache(maxsize=1)
def _patterns() -> tuple[tuple[_Pattern, ...], tuple[_Pattern, ...]]:
    """(sentence patterns, hint patterns); the most literal text first, so a
    specific template wins over a general one (`{what} : {sentence}`)."""
    def literal_length(pattern: _Pattern) -> int:
        return len(_FIELD.sub("", pattern.message.malagasy))

    compiled = sorted((_compile(m) for m in CATALOGUE), key=literal_length, reverse=True)
    return (tuple(p for p in compiled if p.message.kind != "hint"),
            tuple(p for p in compiled if p.message.kind == "hint"))


def _translate_sentence(body: str, with_hints: bool = False) -> str | None:
    sentences, hints = _patterns()
    suffix = ""
    if with_hints:
        peeled = True
        while peeled:
            peeled = False
            for pattern in hints:
                # A hint is the last sentence: try it at each of its possible starts.
                for start in _starts(body, pattern.message.malagasy):
                    filled = _fill(pattern, pattern.regex.fullmatch(body, start))
                    if filled is not None:
                        body, suffix = body[:start], filled + suffix
                        peeled = True
                        break
                if peeled:
                    break
    for pattern in sentences:
        filled = _fill(pattern, pattern.regex.fullmatch(body))
        if filled is not None:
            if suffix and not filled.endswith((".", "?", "!", ")")):
                filled += "."  # the English hint is a sentence of its own
            return filled + suffix
    return None


def _starts(body: str, template: str):
    head = _FIELD.split(template, maxsplit=1)[0]
    start = body.rfind(head)
    while start >= 0:
        yield start
        start = body.rfind(head, 0, start)


def _fill(pattern: _Pattern, match: re.Match | None) -> str | None:
    if match is None:
        return None
    values = {}
    for name, kind in pattern.kinds.items():
        value = match.group(name)
        if kind == "sentence":
            value = _translate_sentence(value) or value
        elif kind == "word":
            value = WORDS.get(value, value)
        values[name] = value
    return _FIELD.sub(lambda m: values[m.group(1)], pattern.message.english)
