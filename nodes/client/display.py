"""How the client shows outcomes: aligned tables or JSON lines.

The drawing itself is the engine's (`engine.evaluation.render`), shared with the
engine runner, so `--embedded` and a remote session print the same thing.
This module adds what is the client's: colour for messages on a terminal,
where a failed statement of a file starts, and help text as JSON in JSON
mode.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

from engine.evaluation.outcome import Outcome
from engine.evaluation.render import render_json, render_table

RED = "\x1b[31m"
GREEN = "\x1b[32m"
RESET = "\x1b[0m"


@dataclass
class Display:
    """Writes outcomes in `format` ("table" or "json") to `out`."""

    format: str = "table"
    out: TextIO = field(default_factory=lambda: sys.stdout)
    color: bool = False

    def outcome(self, outcome: Outcome, place: str | None = None) -> None:
        """Show one outcome; `place` (file:line) prefixes a failure in table format."""
        if self.format == "json":
            self._write(render_json(outcome))
            return
        if outcome.relation is not None:
            # render_table ends with the row count line "(N andalana)".
            self._write(render_table(outcome.relation).rstrip("\n"))
            return
        text = outcome.message if place is None else f"{place}: {outcome.message}"
        self._write(self._paint(text, GREEN if outcome.ok else RED))

    def failure(self, message: str, place: str | None = None) -> None:
        """A failure the client itself detected (connection lost, interrupted)."""
        self.outcome(Outcome.failure(message), place)

    def text(self, text: str) -> None:
        """Plain text for people (help); in JSON mode it becomes a message object."""
        if self.format == "json":
            self.outcome(Outcome.success(text))
        else:
            self._write(text.rstrip("\n"))

    def _paint(self, text: str, colour: str) -> str:
        return f"{colour}{text}{RESET}" if self.color else text

    def _write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()
