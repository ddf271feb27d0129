"""The text the client sends for a statement, and where a node's error is in the script.

Tahiry's client does not send comment-only lines: what a node receives is
code, so no comment can keep it waiting for the rest of a request (issue
15, item 7). `sendable(statement)` drops them and remembers, for every
line sent, the line of the statement it came from. A node's syntax error
counts its position in the text it received (`andalana L, tsanganana C`,
engine/language/parser.py), and a statement's own positions start at its
first character; `ScriptPlace.of` turns that back into the line and column
of the script (file, `-e` text or typed input) the statement came from,
so `ml2.sql:4:17:` names the file's own line. A failure without a position
is placed at its statement's start (its first line sent, after any comment lines).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

# One implementation of "a literal or a comment" (the one the proxy keys on).
from engine.language.script import LITERAL_OR_COMMENT
from engine.language.secrets import mentions_secret

POSITION = re.compile(r"andalana (\d+), tsanganana (\d+)")


@dataclass(frozen=True)
class Sent:
    """A statement as sent: `text`, and for each of its lines the statement line it was.

    lines[i] is the 1-based line of the statement for line i + 1 of `text`;
    `first_offset` characters of that first line were dropped (indentation
    left by a comment line removed before it).
    """

    text: str
    lines: tuple[int, ...]
    first_offset: int = 0

    def statement_position(self, line: int, column: int) -> tuple[int, int]:
        """A position in `text` as a position in the statement (both 1-based)."""
        index = min(max(line, 1), len(self.lines)) - 1
        return self.lines[index], column + (self.first_offset if index == 0 else 0)


def sendable(statement: str) -> Sent:
    """`statement` without its comment-only lines (blank lines around them dropped at the ends)."""
    if "--" not in statement and "//" not in statement:
        return Sent(statement, tuple(range(1, statement.count("\n") + 2)))
    newlines = [index for index, char in enumerate(statement) if char == "\n"]
    comment_only: set[int] = set()
    for match in LITERAL_OR_COMMENT.finditer(statement):
        if match.group()[0] in "'\"":
            continue
        start = match.start()
        line = bisect.bisect_left(newlines, start)   # 0-based line of the comment
        line_start = newlines[line - 1] + 1 if line else 0
        if not statement[line_start:start].strip():
            comment_only.add(line)
    kept = [(number + 1, text) for number, text in enumerate(statement.split("\n"))
            if number not in comment_only]
    while kept and not kept[0][1].strip():
        kept.pop(0)
    while kept and not kept[-1][1].strip():
        kept.pop()
    if not kept:
        return Sent("", (1,))
    first = kept[0][1]
    offset = len(first) - len(first.lstrip())
    kept[0] = (kept[0][0], first[offset:])
    return Sent("\n".join(text for _, text in kept).rstrip(), tuple(number for number, _ in kept),
                offset)


def error_position(message: str) -> tuple[int, int] | None:
    """The (line, column) a node's error names, if it names one."""
    found = POSITION.search(message)
    return (int(found.group(1)), int(found.group(2))) if found else None


def relocate(message: str, line: int, column: int) -> str:
    """`message` with its position replaced by (line, column)."""
    return POSITION.sub(f"andalana {line}, tsanganana {column}", message, count=1)


@dataclass(frozen=True)
class ScriptPlace:
    """Where a failed statement's problem is in its script.

    source: the file name (None for `-e` text and typed input). exact: the
    error named a position (else line/column are the statement's start).
    text/text_column: the statement line at fault and the column in it, for
    the caret (None when the error named no position, or the statement may
    carry a password: `engine.language.secrets.mentions_secret`).
    """

    source: str | None
    line: int
    column: int
    exact: bool = False
    text: str | None = None
    text_column: int = 0

    @classmethod
    def of(cls, message: str, source: str | None, statement: str, sent: Sent,
           start_line: int, start_column: int) -> ScriptPlace:
        """The place of `message`, an error for `statement` (sent as `sent`) starting at start_*."""
        position = error_position(message)
        if position is None:
            # The statement's first line sent: comment lines before it are no part of it.
            line, column = sent.statement_position(1, 1)
            script_column = start_column + column - 1 if line == 1 else column
            return cls(source, start_line + line - 1, script_column)
        line, column = sent.statement_position(*position)
        lines = statement.split("\n")
        text = lines[line - 1] if line <= len(lines) else None
        if mentions_secret(statement):
            text = None   # no line shown under the error: it may hold the password
        script_column = start_column + column - 1 if line == 1 else column
        return cls(source, start_line + line - 1, script_column, True, text, column)

    def prefix(self) -> str:
        """`file:line:column: ` (`file:line: ` without a position); "" without a file."""
        if self.source is None:
            return ""
        if self.exact:
            return f"{self.source}:{self.line}:{self.column}: "
        return f"{self.source}:{self.line}: "
