"""Keyword and name completion for the interactive client (prompt_toolkit).

`Vocabulary` holds what can be completed: the language's keywords, the
client's backslash commands, and the database, table and column names the
session has seen (learned from `asehoy ny ...` results, `\\d` /
`asehoy ny tsanganana` results, query results and success messages).
`TahiryCompleter` completes the word before the cursor from it; a leading
`#` (as in `#rehefa`) is kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from engine.evaluation.outcome import Outcome
from nodes.client.commands import COMMANDS

# Used when the engine's lexer does not expose its keyword table.
FALLBACK_KEYWORDS = (
    "alaivo", "ao", "rehefa", "antso", "tonona", "ka", "vondrona", "alaharo",
    "miakatra", "midina", "fetra", "ankambana", "analana", "atifitra",
    "manampia", "sanda", "havaozy", "ova", "fafao", "manamboara", "ravao",
    "asehoy", "ny", "ampiasao", "tahiry", "tabilao", "efitra", "jery",
    "ary", "na", "dia", "tsy", "null", "anatiny", "avia", "ankavia",
    "avanana", "ankavanana", "feno", "natoraly",
)
TYPE_WORDS = ("ISA", "LAHATSORATRA", "DATY", "TANISA")
FUNCTIONS = ("count", "sum", "avg", "min", "max")
CLIENT_COMMANDS = ("miala", "fanampiana")

WORD_BEFORE_CURSOR = re.compile(r"\\\w*$|[^\W\d]\w*$|$")

_CREATED = re.compile(r"^Ny (tahiry|tabilao|jery|efitra) : (\S+) dia voaforona")
_DROPPED = re.compile(r"^Ny (tahiry|tabilao|jery|efitra) : (\S+) dia voafafa")
_SHOW_KIND = re.compile(r"^\s*asehoy\s+ny\s+(tahiry|tabilao|efitra|jery)\b", re.IGNORECASE)
# `asehoy ny tsanganana [ao@ T]`: rows (column, domain), or (object, kind, column, domain).
_DESCRIBE = re.compile(r"^\s*asehoy\s+ny\s+tsanganana\b(\s*$)?", re.IGNORECASE)


def engine_keywords() -> tuple[str, ...]:
    """The reserved words and join kinds: engine.language.lexer's tables plus ours."""
    words = set(FALLBACK_KEYWORDS)
    try:
        from engine.language import lexer
    except Exception:  # the engine may be mid-change; completion must still work
        return tuple(sorted(words))
    for attribute in ("KEYWORDS", "JOIN_KINDS"):
        table = getattr(lexer, attribute, None)
        if isinstance(table, (dict, set, frozenset, list, tuple)):
            words.update(str(w).lower() for w in table if isinstance(w, str))
    return tuple(sorted(words))


class Vocabulary:
    """Completion candidates: fixed keywords plus names learned in the session."""

    def __init__(self, keywords: Iterable[str] | None = None):
        self.keywords = tuple(keywords) if keywords is not None else engine_keywords()
        self.databases: set[str] = set()
        self.objects: set[str] = set()       # tables, views, domains
        self.columns: set[str] = set()

    def learn(self, statement: str, outcome: Outcome) -> None:
        """Remember names that a statement's outcome revealed."""
        if not outcome.ok:
            return
        created = _CREATED.match(outcome.message)
        dropped = _DROPPED.match(outcome.message)
        if created:
            self._bucket(created.group(1)).add(created.group(2))
        elif dropped:
            self._bucket(dropped.group(1)).discard(dropped.group(2))
        relation = outcome.relation
        if relation is None:
            return
        described = _DESCRIBE.match(statement)
        shown = _SHOW_KIND.match(statement)
        if described:
            every = described.group(1) is not None
            if every:
                self.objects.update(str(row[0]) for row in relation.rows if row and row[0])
            index = 2 if every else 0
            self.columns.update(str(row[index]) for row in relation.rows
                                if len(row) > index and row[index] is not None)
        elif shown:
            self._bucket(shown.group(1).lower()).update(
                str(row[0]) for row in relation.rows if row and row[0] is not None)
        else:
            self.columns.update(c.name for c in relation.columns if _is_name(c.name))

    def _bucket(self, kind: str) -> set[str]:
        return self.databases if kind == "tahiry" else self.objects

    def candidates(self) -> list[tuple[str, str]]:
        """(word, meta) pairs, keywords first."""
        pairs = [(w, "keyword") for w in self.keywords]
        pairs += [(w, "type") for w in TYPE_WORDS]
        pairs += [(w, "function") for w in FUNCTIONS]
        pairs += [(w, "client") for w in CLIENT_COMMANDS]
        pairs += [(w, "client") for w in _backslash_commands()]
        pairs += [(w, "tahiry") for w in sorted(self.databases)]
        pairs += [(w, "tabilao") for w in sorted(self.objects)]
        pairs += [(w, "column") for w in sorted(self.columns - self.objects)]
        return pairs


def _backslash_commands() -> list[str]:
    return [name for spec in COMMANDS for name in spec.names if name.startswith("\\")]


def _is_name(text: str) -> bool:
    return re.fullmatch(r"[^\W\d]\w*", text) is not None


class TahiryCompleter(Completer):
    """Completes the word before the cursor from a `Vocabulary`."""

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary

    def get_completions(self, document: Document, complete_event: CompleteEvent):
        before = WORD_BEFORE_CURSOR.search(document.text_before_cursor)
        assert before is not None   # its `|$` alternative matches any text
        prefix = before.group(0)
        if not prefix:
            return
        lowered = prefix.lower()
        seen: set[str] = set()
        for word, meta in self.vocabulary.candidates():
            if word in seen or not word.lower().startswith(lowered) or word == prefix:
                continue
            seen.add(word)
            text = word
            if meta in ("keyword", "function", "client", "type"):
                # Keywords are case-insensitive: follow the case the user typed.
                text = word.upper() if prefix.isupper() and len(prefix) > 1 else word.lower()
                if meta == "type" and not prefix.islower():
                    text = word.upper()
            yield Completion(text, start_position=-len(prefix), display_meta=meta)
