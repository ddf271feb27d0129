"""How the client shows outcomes: tables (maybe expanded, maybe paged), JSON lines or CSV.

The boxed table is the engine's (`engine.evaluation.render`), shared with
the engine runner, so `--embedded` and a remote session print the same
thing. This module adds what is the client's: the settings the user
changes at the prompt (`Settings`: `\\x`, `\\pset pager`, `\\timing`,
`\\lang`), output to a file (`\\o`), the pager for a result taller than the
terminal (nodes/client/pager.py), colour for messages on a terminal, where
a failed statement of a script is (`file:line:column:`, and in JSON the
`file`, `line`, `column` fields), the caret under a syntax error's position
and its English text (nodes/client/explain.py). In CSV the standard output
holds only the result sets: messages, errors and help go to the error stream.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import orjson

from engine.errors import ENGLISH_ERROR_PREFIX, ERROR_PREFIX
from engine.evaluation.outcome import Outcome
from engine.evaluation.render import outcome_to_json, render_json, table_note
from nodes.client.explain import caret_lines, note_translator, translator
from nodes.client.formats import render_csv, render_rows
from nodes.client.pager import page, pager_command
from nodes.client.positions import ScriptPlace, relocate
from nodes.protocol import LOGIN_REQUIRED

# After the node's "login required" (which names `.login`): how to log in with this client,
# in both languages as the client's own texts.
CLIENT_LOGIN_HINT = " (na / or: ./tahiry client --user NAME)"
RED = "\x1b[31m"
GREEN = "\x1b[32m"
RESET = "\x1b[0m"
FORMATS = ("table", "json", "csv")
EXPANDED_MODES = ("off", "on", "auto")


@dataclass
class Settings:
    """What the user may change during a session (client commands, options)."""

    expanded: str = "auto"     # "off", "on" or "auto" (when a row is wider than the terminal)
    pager: bool = True         # page results taller than the terminal
    timing: bool = False       # print each statement's time
    lang: str = "mg"           # language errors are shown in ("mg": the wire's own)


@dataclass
class Display:
    """Writes outcomes in `format` ("table", "json" or "csv") to `out`, or to the `\\o` file."""

    format: str = "table"
    out: TextIO = field(default_factory=lambda: sys.stdout)
    color: bool = False
    settings: Settings = field(default_factory=Settings)
    errors: TextIO = field(default_factory=lambda: sys.stderr)
    file: TextIO | None = None                      # `\o FILE` (None: the terminal)
    translate: Callable[[str], str] | None = None   # set by set_lang
    translate_note: Callable[[str], str] | None = None   # a success's note; set by set_lang

    # -- settings that need more than a field

    def set_lang(self, lang: str) -> None:
        """Show errors in `lang` ("mg" or "en"); raises LanguageUnavailable."""
        self.translate = translator(lang)
        self.translate_note = note_translator(lang)
        self.settings.lang = lang

    def output_to(self, path: str | None) -> None:
        """Send what follows to the file at `path` (None: back to the terminal); raises OSError."""
        opened = open(path, "w", encoding="utf-8") if path is not None else None  # noqa: SIM115
        if self.file is not None:
            self.file.close()
        self.file = opened

    @property
    def destination(self) -> TextIO:
        return self.file if self.file is not None else self.out

    def terminal_size(self) -> os.terminal_size | None:
        """The terminal's size when output goes to one, else None."""
        if self.file is not None:
            return None
        try:
            if not self.out.isatty():
                return None
            size = os.get_terminal_size(self.out.fileno())
        except (OSError, ValueError, AttributeError):
            return None
        # A pseudo-terminal nobody sized says 0x0: no size known.
        return size if size.columns > 0 and size.lines > 0 else None

    # -- showing things

    def outcome(self, outcome: Outcome, place: ScriptPlace | None = None,
                elapsed: float | None = None) -> None:
        """Show one outcome; `place` says where a failure is in its script; `elapsed` in seconds."""
        if self.format == "json":
            self._write(self._json(outcome, place, elapsed))
            return
        if outcome.relation is not None:
            if self.format == "csv":
                self.destination.write(render_csv(outcome.relation))
                self.destination.flush()
            else:
                self._show_rows(outcome)
            note = table_note(outcome)
            if note and self.translate_note is not None:
                note = self.translate_note(" " + note).strip()
            if note:   # (the rows do not show the message: its note comes under them)
                self._write(self._paint(note, GREEN), self.errors if self.format == "csv" else None)
        elif self.format == "csv" or (not outcome.ok and self.file is not None):
            # (`\o FILE` takes results; an error stays where the user looks, as in psql.)
            self._message(outcome, place, self.errors)
        else:
            self._message(outcome, place, self.destination)
        if self.settings.timing and elapsed is not None:
            self._write(f"Fotoana / Time: {elapsed * 1000:.3f} ms",
                        self.errors if self.format == "csv" else None)

    def failure(self, problem: str, place: ScriptPlace | None = None) -> None:
        """A failure the client itself detected (a command used wrongly, a file it cannot
        read, the connection lost, an interrupt).

        `problem` is said in both languages or in neither (`\\x [on|off|auto]`):
        only its prefix follows `\\lang`, `Error: ` in English as for the
        node's errors.
        """
        prefix = ENGLISH_ERROR_PREFIX if self.settings.lang == "en" else ERROR_PREFIX
        self.outcome(Outcome.failure(prefix + problem), place)

    def text(self, text: str) -> None:
        """Plain text for people (help, acknowledgements); in JSON it becomes a message object."""
        if self.format == "json":
            self.outcome(Outcome.success(text))
        else:
            self._write(text.rstrip("\n"), self.errors if self.format == "csv" else None)

    def _show_rows(self, outcome: Outcome) -> None:
        assert outcome.relation is not None
        size = self.terminal_size()
        text = render_rows(outcome.relation, self.settings.expanded,
                           size.columns if size else None)
        if size is not None and self.settings.pager and text.count("\n") + 2 > size.lines:
            if page(text + "\n", self.out, pager_command()):
                return
        self._write(text)

    def _message(self, outcome: Outcome, place: ScriptPlace | None, stream: TextIO) -> None:
        text = outcome.message
        lines: list[str] = []
        if not outcome.ok and place is not None and place.exact:
            text = relocate(text, place.line, place.column)
        if not outcome.ok and self.translate is not None:
            text = self.translate(text)
        elif outcome.ok and self.translate_note is not None:
            text = self.translate_note(text)
        if not outcome.ok and outcome.message == LOGIN_REQUIRED:
            text += CLIENT_LOGIN_HINT
        if not outcome.ok and place is not None:
            lines = caret_lines(place, self.settings.lang == "en")
            text = place.prefix() + text
        colour = GREEN if outcome.ok else RED
        self._write("\n".join([self._paint(text, colour), *lines]), stream)

    def _json(self, outcome: Outcome, place: ScriptPlace | None, elapsed: float | None) -> str:
        in_file = place is not None and place.source is not None and not outcome.ok
        if not in_file and not (self.settings.timing and elapsed is not None):
            return render_json(outcome)
        shape = outcome_to_json(outcome)
        if in_file:
            assert place is not None
            shape["file"] = place.source
            shape["line"], shape["column"] = place.line, place.column
        if self.settings.timing and elapsed is not None:
            shape["time_ms"] = round(elapsed * 1000, 3)
        try:
            return orjson.dumps(shape).decode("utf-8")
        except TypeError:  # integers beyond 64 bits
            return json.dumps(shape, ensure_ascii=False, separators=(",", ":"))

    def _paint(self, text: str, colour: str) -> str:
        return f"{colour}{text}{RESET}" if self.color and self.file is None else text

    def _write(self, text: str, stream: TextIO | None = None) -> None:
        stream = stream if stream is not None else self.destination
        stream.write(text + "\n")
        stream.flush()
