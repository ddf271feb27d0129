"""Splitting a script into statements, and normalising a statement's text.

A statement ends at a `;` outside string literals (`'..'`, `".."`, with
doubled quotes and backslash escapes inside) and outside `--` / `//` line
comments. `StatementSplitter` does this incrementally, so the network layer
can feed it arbitrary chunks; scanning jumps between interesting characters
with regular expressions instead of walking the text character by character.

Each `Piece` carries the statement text (without its `;`, leading and
trailing whitespace stripped) and the 1-based line and column where that
text starts in the whole input, so syntax errors report script positions.
Whitespace-only statements are dropped; comment-only ones are returned (the
parser returns None for them). A reader that must bound its memory (a
script of any size, a network stream) checks `pending_length()` and drops
an over-long unfinished statement with `discard_pending()`, which keeps the
scanning state and the line count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Piece:
    """One statement's text and where it starts in the whole input.

    overlong: when a reader dropped the statement's text for being longer
    than it allows (`discard_pending`), its length in characters (`text`
    is then only a placeholder); else 0.
    """

    text: str
    line: int
    column: int
    overlong: int = 0


# Outside literals and comments: the next character that matters.
_NORMAL_STOP = re.compile(r"[;'\"]|--|//")
# Inside a string: everything up to (not including) a possible end.
_STRING_BODY = {
    "'": re.compile(r"(?:[^'\\]+|\\[\s\S]|'')*"),
    '"': re.compile(r'(?:[^"\\]+|\\[\s\S]|"")*'),
}

_NORMAL, _STRING, _COMMENT = 0, 1, 2


class StatementSplitter:
    """Incremental statement splitter; `feed` chunks, then `finish`."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        """The state of a new splitter (`finish` starts over)."""
        self._buffer = ""
        self._start = 0        # where the current statement starts in _buffer
        self._scan = 0         # where scanning resumes in _buffer
        self._state = _NORMAL
        self._quote = ""
        self._line = 1         # position of _buffer[_start] in the whole input
        self._column = 1
        self._placeholder = False  # the current statement starts with discard_pending's mark

    def feed(self, text: str) -> list[Piece]:
        """Add `text`; return the statements completed by it (in order)."""
        if self._start:
            self._buffer = self._buffer[self._start:]
            self._scan -= self._start
            self._start = 0
        buffer = self._buffer = self._buffer + text
        pieces: list[Piece] = []
        scan, state, end = self._scan, self._state, len(buffer)
        while scan < end:
            if state == _NORMAL:
                match = _NORMAL_STOP.search(buffer, scan)
                if match is None:
                    # A trailing '-' or '/' may begin a comment with the next chunk.
                    scan = end - 1 if buffer[-1] in "-/" else end
                    break
                found = match.group()
                scan = match.end()
                if found == ";":
                    piece = self._take(match.start(), scan)
                    if piece is not None:
                        pieces.append(piece)
                elif found in "'\"":
                    state, self._quote = _STRING, found
                else:
                    state = _COMMENT
            elif state == _STRING:
                # `(...)*` matches at any position (perhaps empty): never None.
                scan = _STRING_BODY[self._quote].match(buffer, scan).end()  # type: ignore[union-attr]
                if scan >= end - 1:
                    break  # need more text: a lone quote or backslash may continue
                scan += 1  # the closing quote (a doubled one was consumed above)
                state = _NORMAL
            else:
                newline = buffer.find("\n", scan)
                if newline < 0:
                    scan = end
                    break
                scan = newline + 1
                state = _NORMAL
        self._scan, self._state = scan, state
        return pieces

    def finish(self) -> Piece | None:
        """The text after the last `;` (None if blank); resets the splitter."""
        end = len(self._buffer)
        piece = self._take(end, end)
        self._reset()
        return piece

    def in_literal(self) -> bool:
        """Whether the text fed so far ends inside a string or a comment."""
        return self._state != _NORMAL

    def pending_length(self) -> int:
        """Characters of the unfinished statement held (text after the last `;`)."""
        return len(self._buffer) - self._start

    def pending_start(self) -> tuple[int, int]:
        """Line and column of the unfinished statement's first non-blank character."""
        buffer, start = self._buffer, self._start
        lead = len(buffer) - start - len(buffer[start:].lstrip())
        return self._advance(self._line, self._column, buffer, start, start + lead)

    def discard_pending(self) -> int:
        """Drop the unfinished statement's text scanned so far; the characters dropped.

        The scanning state (inside a string or a comment) and the line count
        are kept, so the rest of the statement is split exactly as it would
        have been; its end still comes out as a (non-blank) piece, whose
        text starts with a placeholder character.
        """
        if self._placeholder:
            dropped = self._scan - self._start - 1
        else:  # what the statement's text would hold: no leading blanks
            dropped = len(self._buffer[self._start:self._scan].lstrip())
        self._line, self._column = self._advance(self._line, self._column, self._buffer,
                                                 self._start, self._scan)
        # The placeholder keeps the statement non-blank; it stands one column
        # before the text that follows it.
        self._column -= 1
        self._buffer = "\0" + self._buffer[self._scan:]
        self._start, self._scan = 0, 1
        self._placeholder = True
        return dropped

    def _take(self, stop: int, resume: int) -> Piece | None:
        """Cut the statement buffer[_start:stop]; the next one starts at resume."""
        buffer, start = self._buffer, self._start
        raw = buffer[start:stop]
        stripped = raw.lstrip()
        piece = None
        if stripped:
            lead = len(raw) - len(stripped)
            line, column = self._advance(self._line, self._column, buffer, start, start + lead)
            piece = Piece(stripped.rstrip(), line, column)
        self._line, self._column = self._advance(self._line, self._column, buffer, start, resume)
        self._start = resume
        self._placeholder = False
        return piece

    @staticmethod
    def _advance(line: int, column: int, text: str, start: int, stop: int) -> tuple[int, int]:
        newlines = text.count("\n", start, stop)
        if newlines:
            return line + newlines, stop - text.rfind("\n", start, stop)
        return line, column + stop - start


def split_statements(text: str) -> list[Piece]:
    """All statements of a whole script, including text after the last `;`."""
    if ";" not in text:
        # One statement at most (a server's request, framed already): the
        # splitter would only strip it and find where it starts.
        stripped = text.lstrip()
        if not stripped:
            return []
        line, column = StatementSplitter._advance(1, 1, text, 0, len(text) - len(stripped))
        return [Piece(stripped.rstrip(), line, column)]
    splitter = StatementSplitter()
    pieces = splitter.feed(text)
    last = splitter.finish()
    if last is not None:
        pieces.append(last)
    return pieces


# A literal (or an unterminated one, kept to the end) or a comment (the client also
# uses it to leave comment-only lines out of what it sends: nodes/client/positions.py).
LITERAL_OR_COMMENT = re.compile(
    r"""('[^'\\]*+(?:(?:''|\\[\s\S])[^'\\]*+)*+'"""
    r"""|"[^"\\]*+(?:(?:""|\\[\s\S])[^"\\]*+)*+"|['"][\s\S]*|--[^\n]*|//[^\n]*)"""
)


def normalise_statement(text: str) -> str:
    """`text` with comments dropped and whitespace runs outside literals made one space.

    Two statements with the same normal form mean the same thing (the proxy
    cache keys on it); only error columns and a view's stored query text
    keep the original layout. An unterminated literal is kept as it is.
    """
    if "'" not in text and '"' not in text and "--" not in text and "//" not in text:
        return " ".join(text.split())
    parts = LITERAL_OR_COMMENT.split(text)
    out: list[str] = []
    code: list[str] = []  # text between literals; a comment counts as a space
    for index, part in enumerate(parts):
        if index % 2 == 0:
            code.append(part)
        elif part[0] in "'\"":
            out.append(_collapse("".join(code)))
            out.append(part)
            code = []
        else:
            code.append(" ")
    out.append(_collapse("".join(code)))
    return "".join(out).strip()


def _collapse(code: str) -> str:
    """Whitespace runs made one space, keeping a space at either end."""
    words = " ".join(code.split())
    if not words:
        return " " if code else ""
    lead = " " if code[0].isspace() else ""
    trail = " " if code[-1].isspace() else ""
    return lead + words + trail
