"""What a server's engine thread runs now, and an administrator stopping it (`.stop NAME;`).

Statements run on the engine thread one at a time (nodes/server/node.py), so
one student's slow join holds every statement of the server behind it, up to
the engine's time limit (30 s), and again for each such statement of a
script. `Activity` keeps the statement running now (`begin` and `end`, on the
engine thread) so that `.status;` shows it once it has run for SHOWN_AFTER_S,
with its account, database and text (passwords replaced by `"***"`), to
those who may see account names (an administrator's session, the
supervisor's token: nodes/server/accounts.py); and stops it on an
administrator's `.stop NAME;`: the query ends at its next time test (within
milliseconds, engine/evaluation/relational.py `Cancel`) and is answered
`Najanon'ny mpitantana ny fangatahana.`. Only that statement: the session
goes on, its next statement runs as usual (`end` takes the stop back). A
statement is never stopped in the middle of a write (the engine's time tests
are in queries only), and a small read run on the event loop is over before
a `.stop` could be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import monotonic
from typing import Any

from engine.evaluation.relational import Cancel
from engine.language.secrets import redact_secrets

SHOWN_AFTER_S = 1.0      # a statement running this long is shown in `.status;`
STATEMENT_CHARS = 200    # of its text, shown


@dataclass(frozen=True)
class Running:
    session: Any         # the engine Session (its identity, current database, limits)
    text: str
    started: float       # monotonic


def _cancel_of(session: Any) -> Cancel | None:
    cancel = session.limits.query.cancel
    return cancel if isinstance(cancel, Cancel) else None


class Activity:
    """The statement this server's engine thread runs now (one at a time)."""

    def __init__(self) -> None:
        self._running: Running | None = None   # replaced whole: read from the event loop

    def begin(self, session: Any, text: str) -> None:
        """On the engine thread, before a statement runs."""
        cancel = _cancel_of(session)
        if cancel is not None:
            cancel.resume()   # a stop meant for an earlier statement that ended meanwhile
        self._running = Running(session, text, monotonic())

    def end(self) -> None:
        """On the engine thread, once it ran."""
        running, self._running = self._running, None
        if running is not None:
            cancel = _cancel_of(running.session)
            if cancel is not None:
                cancel.resume()

    def report(self) -> list[dict]:
        """The statement running for SHOWN_AFTER_S or more, as `.status;` shows it."""
        running = self._running
        if running is None:
            return []
        seconds = monotonic() - running.started
        if seconds < SHOWN_AFTER_S:
            return []
        identity = getattr(running.session, "identity", None)
        text = " ".join(redact_secrets(running.text).split())
        if len(text) > STATEMENT_CHARS:
            text = text[:STATEMENT_CHARS - 3] + "..."
        return [{"account": identity.name if identity is not None else None,
                 "database": running.session.current_database,
                 "seconds": round(seconds, 1), "statement": text}]

    def stop(self, name: str) -> int:
        """Stop the statement account `name` runs now: how many were stopped (0 or 1)."""
        running = self._running
        identity = getattr(running.session, "identity", None) if running is not None else None
        if running is None or identity is None or identity.name != name:
            return 0
        cancel = _cancel_of(running.session)
        if cancel is None or cancel.is_set():
            return 0
        cancel.stop()
        return 1
