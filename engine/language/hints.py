""""Did you mean": the hint an error ends with (docs/LANGUAGE.md 5b).

Computed only when an error is raised, never on success. Four kinds:
- a misspelled keyword, table, view or column: the closest known name
  (difflib's ratio, `CUTOFF`), as `hint_did_you_mean`;
- an English SQL keyword (`select`, `where`, ...): its Malagasy word, as
  `hint_english_keyword`;
- a SQL keyword Tahiry has no word for (`distinct`, `in`, ...): how a
  query writes the same, as `hint_written_otherwise`;
- nothing, when no candidate is close enough.

The hint is one more sentence at the end of the error's text, on the same
line (the original DirkDB client prints lines), so the documented text of
every error stays its beginning. Its exact form is in
engine.language.messages (`hint_did_you_mean`, `hint_english_keyword`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from engine.language.account_syntax import ACCOUNT_WORDS
from engine.language.english import (
    ENGLISH_KEYWORDS,
    SQL_CONSTRAINTS,
    SQL_TABLE_CONSTRAINTS,
    english_keyword,
    written_otherwise,
)
from engine.language.lexer import HASH_WORDS, KEYWORDS
from engine.language.messages import text

# How close a word must be to a name to be suggested (difflib ratio).
CUTOFF = 0.75
# The word before the error (read as an alias) is a name more often than a typo.
ALIAS_CUTOFF = 0.85
# A shorter unknown word is too short to guess from (`id` is not `ka`).
MIN_MISSPELLED_LENGTH = 4

# The Malagasy words a misspelling is compared with (`ao` is written `ao@`).
_KEYWORD_WORDS = sorted(set(KEYWORDS) | {"tsanganana"})
_SHOWN_KEYWORD = {"ao": "ao@"}

_LAST_WORD = re.compile(r"(?<![\w.])([^\W\d]\w*)\s*\Z")
_WORD_AT = re.compile(r"[^\W\d]\w*")
_HASH_WORD = re.compile(r"\#\s*([^\W\d]\w*)")
# NOT in a condition (`rehefa ! (a > 1)`); English `not` is `tsy` only in `dia tsy null`.
NOT_OPERATOR = "!"


def closest(word: str, names: Iterable[str], cutoff: float = CUTOFF) -> str | None:
    """The name closest to `word` (case-insensitively) if close enough, else None."""
    if len(word) < MIN_MISSPELLED_LENGTH:
        return None
    by_folded: dict[str, str] = {}
    for name in names:
        by_folded.setdefault(name.casefold(), name)
    by_folded.pop(word.casefold(), None)  # the word itself is no suggestion
    found = difflib.get_close_matches(word.casefold(), list(by_folded), n=1, cutoff=cutoff)
    return by_folded[found[0]] if found else None


def name_hint(word: str, names: Iterable[str]) -> str:
    """The hint for an unknown table, view or column `word` among `names` ("" if none)."""
    instead = written_otherwise(word)
    if instead is not None:   # `alaivo distinct a ao@ t`: `distinct` read as a column
        return text("hint_written_otherwise", word=word, instead=instead)
    names = list(names)
    # Names are case-sensitive (file names): one differing from `word` only in case is the
    # suggestion, whatever its length (`closest` leaves the word's own case variants out).
    folded = word.casefold()
    suggestion = next((name for name in names if name.casefold() == folded and name != word),
                      None) or closest(word, names)
    if suggestion is None:
        return ""
    return text("hint_did_you_mean", suggestion=suggestion, word=word)


# SQL's join kinds written before `join`, each with a Tahiry join of its own (`outer` is
# left out: in `left outer join` it follows the kind).
_JOIN_KINDS = frozenset(("inner", "left", "right", "full", "natural"))


def keyword_hint(word: str, keywords: Iterable[str] = _KEYWORD_WORDS, cutoff: float = CUTOFF,
                 after: str = "") -> str:
    """The hint for `word` found where the grammar did not expect it ("" if none).

    An English keyword always has one; a misspelling is looked for among
    `keywords` (those the grammar expected there, when known). `after`:
    the word before it (`not` is `tsy` only after `dia`, in `dia tsy null`;
    anywhere else NOT is written `!`).
    """
    if word.lower() in KEYWORDS or word.lower() in ACCOUNT_WORDS:
        return ""   # a word of the language is no misspelling
    keyword = english_keyword(word)
    if keyword is not None:
        if word.lower() == "not" and after.lower() != "dia":
            keyword = NOT_OPERATOR
        elif word.lower() == "join" and after.lower() in _JOIN_KINDS:
            # `left join` (`left` read as the table's alias): that kind's join.
            keyword, word = ENGLISH_KEYWORDS[after.lower()], f"{after} {word}"
        return text("hint_english_keyword", keyword=keyword, word=word)
    instead = written_otherwise(word)
    if instead is not None:
        return text("hint_written_otherwise", word=word, instead=instead)
    suggestion = closest(word, keywords, cutoff)
    if suggestion is None:
        return ""
    return text("hint_did_you_mean", suggestion=_SHOWN_KEYWORD.get(suggestion, suggestion),
                word=word)


# The set-operator words take a query after them (`analana alaivo ...`, `analana (`,
# `analana@`): the word before an error that is no such start is no misspelled one of them
# (`alaivo id anarana taranja`: a comma forgotten, not `analana`).
_SET_OPERATOR_WORDS = frozenset(("ankambana", "analana", "atifitra"))
_QUERY_START = re.compile(r"(?:alaivo\b|[(@#])", re.IGNORECASE)
_NOT_BEFORE_A_NAME = [word for word in _KEYWORD_WORDS if word not in _SET_OPERATOR_WORDS]


# After these a word is an operand (a column, a value), never an alias.
_OPERAND_BEFORE = tuple("(,=<>+-*/!@")


def _read_as_operand(source: str, start: int) -> bool:
    """Whether the word at `start` follows a keyword or an operator: then the parser read it
    as a name it was given (`rehefa anarana like ...`), not as an alias standing for a
    misspelled clause word, and it is no misspelling to hint at (`anarana` is no
    `analana`)."""
    head = source[:start].rstrip()
    if head.endswith(_OPERAND_BEFORE):
        return True
    earlier = _LAST_WORD.search(head)
    return earlier is not None and earlier.group(1).lower() in KEYWORDS


def syntax_hint(source: str, index: int, expected: Iterable[str] | None = None) -> str:
    """The hint for a syntax error at `index` of `source` ("" if none).

    The word at fault may be the one at `index` (`select * ...`, `alaivo *
    form t`), compared with the keywords the grammar `expected` there (None:
    not known, every keyword; none: no keyword could come there, so no
    misspelt one is suggested: `ampiasao s extra` is no `fetra`), or the
    word just before it: a misspelled clause word right after a table is
    read as the table's alias (`ao@ t rehefaa id = 1`) and the error lands on
    the next token; that word is compared with every keyword, more strictly.
    English keywords come first: `alaivo id from t` blames `from`, not `t`.
    """
    words: list[tuple[str, list[str], float | None, str]] = []
    # (word, keywords, cutoff or None: no misspelling looked for, the word before it)
    before = _LAST_WORD.search(source, 0, index)
    previous = before.group(1) if before is not None else ""
    if source.startswith("#", index):  # `#rehefaa`: the word the `#` stands before
        after = _HASH_WORD.match(source, index)
        if after is not None:
            words.append((after.group(1), sorted(HASH_WORDS), CUTOFF, previous))
    at = _WORD_AT.match(source, index)
    keywords = _KEYWORD_WORDS if expected is None else sorted(expected)
    if at is not None and keywords and (index == 0 or not (source[index - 1].isalnum()
                                                           or source[index - 1] in "_.")):
        words.append((at.group(), keywords, CUTOFF, previous))
    if before is not None:
        earlier = _LAST_WORD.search(source, 0, before.start())
        # (An operand is still checked for an English keyword: `rehefa not id > 1`.)
        alias_words = _KEYWORD_WORDS if _QUERY_START.match(source, index) \
            else _NOT_BEFORE_A_NAME
        words.append((previous, alias_words,
                      None if _read_as_operand(source, before.start()) else ALIAS_CUTOFF,
                      earlier.group(1) if earlier is not None else ""))
    for word, _, _, word_before in words:
        if (english_keyword(word) is not None or written_otherwise(word) is not None) \
                and word.lower() not in KEYWORDS:
            return keyword_hint(word, after=word_before)
    for word, keywords, cutoff, word_before in words:
        if cutoff is None:
            continue   # no misspelling to look for
        hint = keyword_hint(word, keywords, cutoff, word_before)
        if hint:
            return hint
    return ""


_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_CONSTRAINT_PHRASE = re.compile(r"(?:primary|foreign)\s+key|not\s+null", re.IGNORECASE)


def constraint_hint(source: str, index: int) -> str:
    """The hint for a syntax error at `index` of a `manamboara` statement (`source`) that is
    a SQL column constraint ("" if none): the word at the error is one (`id ISA(0,10) not
    null`, `unique`), or the definition being read starts with one (`, primary key (id)`,
    where `primary` stood as a column's name)."""
    at = _WORD_AT.match(source, index)
    word = at.group() if at is not None else ""
    if word.lower() not in SQL_CONSTRAINTS:
        # The definition being read: what follows the last `,` (a domain's bounds are
        # done by then: the error falls after them).
        definition = _STRINGS.sub("''", source[:index]).rsplit(",", 1)[-1]
        first = _WORD_AT.search(definition)
        if first is None or first.group().lower() not in SQL_TABLE_CONSTRAINTS:
            return ""
        index = source.rfind(first.group(), 0, index)
        word = first.group()
    phrase = _CONSTRAINT_PHRASE.match(source, index)
    return text("hint_no_constraint", word=phrase.group() if phrase is not None else word)
