"""Passwords out of statement text: `redact_secrets(text)` for logs, histories and echoes.

The account statements (docs/LANGUAGE.md 2, "Accounts and rights") carry a
password after the word `tenimiafina`:

    manamboara mpampiasa NAME tenimiafina "PW" [mpitantana]
    ovay ny tenimiafina NAME "PW"

`redact_secrets` reads the text as the lexer does (words, string literals in
either quote, comments, `;` between statements) and, in a statement where
the word `tenimiafina` stands (not inside a string or a comment), replaces
with `"***"`: every string literal after it, and the bare word where the
password was due (`tenimiafina PW`, `ny tenimiafina NAME PW`, or the last
word of `ny tenimiafina PW`; after `ny tenimiafina`, a first token that
can be no name, such as `12ab`, too; a bare password runs to the next
space, quote or `;`). Comments, spaces and everything else are kept. A text without
`tenimiafina` (in any case) is returned as it is after one lower-cased
search (1.4 ms per MB); one of more than 64 KiB that holds it is cut after
the word's first occurrence (`... tenimiafina "***" (...)`). Import-free (no parser): a client
or a node uses it without loading the engine.
"""

from __future__ import annotations

import re

REDACTED = '"***"'
# A longer text holding the word is cut after its first `tenimiafina` (a token
# scan costs about 1 s per MB; account statements are short).
MAX_SCANNED_CHARS = 65536
ELIDED = "(...)"
_LOWER_WORD = "tenimiafina"

# The tokens that matter, as the lexer sees them (comments and strings first,
# so that nothing inside them is taken for a word; an unterminated string
# runs to the end, as its error says); `finditer` skips spaces in C.
_TOKEN = re.compile(r"""
      (?P<comment>(?:--|//)[^\n]*)
    | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|['"].*\Z)
    | (?P<end>;)
    | (?P<word>[^\W\d]\w*)
    | (?P<other>\d\w*|[^\s\w'";])
""", re.VERBOSE | re.DOTALL)
# A bare password runs to the next space, quote or `;`.
_BARE = re.compile(r"""[^\s'";]+""")


def mentions_secret(text: str) -> bool:
    """Whether `text` may hold a password (the word `tenimiafina`, in any case).

    (`str.lower` and a plain search: many times faster than a case-blind
    regular expression over a bulk insert; the parser compares words lower-cased too.)
    """
    return _LOWER_WORD in text.lower()


def redact_secrets(text: str) -> str:
    """`text` with every password literal of an account statement replaced by `"***"`."""
    lowered = text.lower()
    if _LOWER_WORD not in lowered:
        return text
    if len(text) > MAX_SCANNED_CHARS:
        # No account statement is this long: keep the text up to the word, drop the rest.
        cut = lowered.index(_LOWER_WORD) + len(_LOWER_WORD)
        return text[:cut] + " " + REDACTED + " " + ELIDED
    spans = _password_spans(text)
    if not spans:
        return text
    parts, at = [], 0
    for start, end in spans:
        if start < at:
            continue
        parts.append(text[at:start])
        parts.append(REDACTED)
        at = end
    parts.append(text[at:])
    return "".join(parts)


def in_password(text: str, index: int) -> bool:
    """Whether position `index` of `text` lies in a password written without quotes
    (where `redact_secrets` would redact a bare token: an error there would repeat it)."""
    first = text.lower().find(_LOWER_WORD)
    if first < 0:
        return False
    if len(text) > MAX_SCANNED_CHARS:
        return index > first   # a long text is cut after the word: anything after counts
    return any(start <= index < end and text[start] not in "'\""
               for start, end in _password_spans(text))


def _password_spans(text: str) -> list[tuple[int, int]]:
    """Where passwords may stand: after the word `tenimiafina` in its statement, every
    string literal, and the bare token where the password was due (module docstring)."""
    spans: list[tuple[int, int]] = []
    armed = False            # `tenimiafina` seen in this statement
    previous = ""            # the word before the last significant token
    waiting: list = []       # the tokens after `tenimiafina` still needed to place the password
    after_ny = False
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "comment":
            continue
        if kind == "end":
            _settle(text, waiting, after_ny, spans)
            armed, previous, waiting = False, "", []
            continue
        if kind == "word" and match.group().lower() == _LOWER_WORD:
            _settle(text, waiting, after_ny, spans)
            armed, after_ny, waiting = True, previous == "ny", []
            previous = _LOWER_WORD
            continue
        if armed:
            if kind == "string":
                spans.append(match.span())
            if len(waiting) < 2:
                waiting.append((kind, match.start()))
        previous = match.group().lower() if kind == "word" else ""
    _settle(text, waiting, after_ny, spans)
    return sorted(set(spans))


def _settle(text: str, waiting: list, after_ny: bool, spans: list) -> None:
    """Add the bare password among the (at most two) tokens that followed `tenimiafina`."""
    if not waiting:
        return
    if after_ny and waiting[0][0] != "string":
        # `ny tenimiafina NAME PW`: the password is the second; alone, the first.
        due = waiting[1] if len(waiting) > 1 else waiting[0]
        if waiting[0][0] != "word" and due is not waiting[0]:
            # No name can stand there (`12ab'`: a password whose quote was lost): it may be one.
            _add_bare(text, waiting[0][1], spans)
    else:
        due = waiting[0]
    if due[0] != "string":
        _add_bare(text, due[1], spans)


def _add_bare(text: str, start: int, spans: list) -> None:
    """The span of the bare token starting at `start` (to the next space, quote or `;`)."""
    bare = _BARE.match(text, start)
    if bare is not None:
        spans.append(bare.span())
