"""Reading a script of any size: chunk by chunk, statement by statement.

A `ScriptSource` reads a file, a pipe or a text in chunks, feeds the
engine's incremental `StatementSplitter` and hands out each statement as a
`Piece` as soon as its `;` has been read, so a dump of any size runs with
the memory of its longest statement, and a pipe that never ends is served
as it grows. Positions count from the start of the whole script (errors
keep their `file:line`).

Memory is bounded even for a statement that never ends (an unbalanced
quote early in a dump would otherwise swallow the rest of the file): once
the unfinished statement passes `max_chars`, its text is dropped as it
arrives and the statement comes out as one `Piece` with `overlong` set to
its length; the caller answers it with its usual "too long" error.

Bytes are decoded as UTF-8 (a byte order mark at the start is skipped; a
UTF-16 one, as Windows Notepad's "Unicode" writes, has the script decoded
as UTF-16; `\\r\\n` becomes `\\n`, as a file opened in text mode would give); with
errors="strict" a byte sequence that is not UTF-8 raises
`UnicodeDecodeError` from `poll` when it is reached.

`poll(block=False)` never waits on a pipe or a terminal: it returns
`PENDING` when no statement is complete and no input is ready, so a
pipelining client can read answers meanwhile (waiting on `fileno()`).
"""

from __future__ import annotations

import codecs
import io
import os
import select
import stat
from collections import deque
from collections.abc import Iterator

from engine.language.script import Piece, StatementSplitter

CHUNK_BYTES = 1 << 16
PENDING = object()  # poll(block=False): no statement ready yet



# The byte order marks of UTF-16 (little and big endian) a script may start with.
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _decoder(encoding: str, errors: str) -> io.IncrementalNewlineDecoder:
    """An incremental decoder of `encoding` whose `\\r\\n` become `\\n`."""
    return io.IncrementalNewlineDecoder(codecs.getincrementaldecoder(encoding)(errors),
                                        translate=True)


def unreadable(path: str) -> str | None:
    """Why a script file cannot be read ("-", standard input, always can), or None.

    Checked before anything runs, so a typo in a file name changes nothing.
    """
    if path == "-":
        return None
    if not os.path.exists(path):
        return "no such file"
    if os.path.isdir(path):
        return "it is a directory"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


class ScriptSource:
    """The statements of one script, read incrementally (see the module docstring)."""

    def __init__(self, fd: int | None = None, text: str | None = None, *,
                 name: str | None = None, max_chars: int | None = None,
                 errors: str = "strict", close: bool = False):
        """Read from file descriptor `fd` (not closed unless `close`) or from `text`."""
        self.name = name
        self.max_chars = max_chars
        self._fd = fd
        self._close_fd = close
        self._text = text
        self._errors = errors
        self._decoder = _decoder("utf-8", errors)
        self._splitter = StatementSplitter()
        self._ready: deque[Piece] = deque()
        self._held = 0                 # characters of the pieces in _ready
        self._eof = False
        self._started = False
        self._overlong: tuple[int, int, int] | None = None   # line, column, chars dropped
        # A regular file never blocks and has a size: progress can estimate a total.
        self.size: int | None = len(text.encode("utf-8")) if text is not None else None
        self._regular = fd is None
        if fd is not None:
            info = os.fstat(fd)
            self._regular = stat.S_ISREG(info.st_mode)
            if self._regular:
                self.size = max(0, info.st_size - os.lseek(fd, 0, os.SEEK_CUR))
        self.bytes_read = 0
        self.statements = 0           # pieces handed out so far

    @classmethod
    def open(cls, path: str, **options) -> ScriptSource:
        """A file by path (`-`: standard input); OSError if it cannot be opened."""
        if path == "-":
            return cls(0, name=options.pop("name", "stdin"), **options)
        fd = os.open(path, os.O_RDONLY)
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise IsADirectoryError(21, "Is a directory", path)
            return cls(fd, name=options.pop("name", path), close=True, **options)
        except BaseException:
            os.close(fd)
            raise

    def fileno(self) -> int | None:
        """What to wait on when `poll(block=False)` returned PENDING (None: never blocks)."""
        return None if self._regular else self._fd

    def estimated_total(self) -> int | None:
        """The number of statements the whole script probably holds (None: unknown)."""
        if self.size is None or not self.bytes_read or not self.statements:
            return None
        if self._eof:
            return self.statements + len(self._ready)
        # What the statements handed out so far took of the script (read ahead
        # and not handed out yet does not count; characters stand for bytes).
        held = self._held + self._splitter.pending_length()
        consumed = max(1, self.bytes_read - held)
        return max(self.statements, round(self.statements * self.size / consumed))

    def poll(self, block: bool = True):
        """The next statement; None at the end; PENDING when not `block` and input would wait."""
        while not self._ready:
            if self._eof:
                return None
            if not block and not self._input_ready():
                return PENDING
            self._read_chunk()
        self.statements += 1
        piece = self._ready.popleft()
        self._held -= len(piece.text)
        return piece

    def __iter__(self) -> Iterator[Piece]:
        while True:
            piece = self.poll()
            if piece is None:
                return
            yield piece

    def close(self) -> None:
        if self._close_fd and self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ScriptSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- reading

    def _input_ready(self) -> bool:
        fd = self._fd
        if self._regular or fd is None:  # a text or a regular file never waits
            return True
        ready, _, _ = select.select([fd], [], [], 0)
        return bool(ready)

    def _read_chunk(self) -> None:
        if self._fd is None:  # a text: one chunk, already in memory
            text, final = self._text or "", True
            self._text = None
            self.bytes_read = self.size or 0
        else:
            data = os.read(self._fd, CHUNK_BYTES)
            final = not data
            if self.bytes_read == 0 and data[:2] in UTF16_BOMS:
                # Windows Notepad's "Unicode", Windows PowerShell's `>`: UTF-16, which its
                # mark says (no UTF-8 text starts with these bytes); the decoder drops it.
                self._decoder = _decoder("utf-16", self._errors)
            text = self._decoder.decode(data, final=final)
            self.bytes_read += len(data)
        if not self._started and text:
            self._started = True
            if text.startswith("\ufeff"):  # some editors' byte order mark: not script text
                text = text[1:]
        self._take(self._splitter.feed(text))
        if final:
            self._eof = True
            last = self._splitter.finish()
            if last is not None:
                self._take([last])
        elif self.max_chars is not None and self._splitter.pending_length() > self.max_chars:
            if self._overlong is None:
                line, column = self._splitter.pending_start()
                self._overlong = (line, column, 0)
            line, column, dropped = self._overlong
            self._overlong = (line, column, dropped + self._splitter.discard_pending())

    def _take(self, pieces: list[Piece]) -> None:
        for piece in pieces:
            if self._overlong is not None:
                # The end of the statement whose text was dropped.
                line, column, dropped = self._overlong
                self._overlong = None
                tail = len(piece.text) - 1 if piece.text.startswith("\0") else len(piece.text)
                piece = Piece("\0", line, column, overlong=dropped + tail)
            elif self.max_chars is not None and len(piece.text) > self.max_chars:
                piece = Piece("\0", piece.line, piece.column, overlong=len(piece.text))
            self._ready.append(piece)
            self._held += len(piece.text)
