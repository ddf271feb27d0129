"""What running one statement produces, as plain values passed between layers.

A statement yields exactly one `Outcome`: a success with a message and,
for queries, a `Relation`; or a failure whose message starts with
`Hadisoana : `. The server encodes outcomes on the wire, the embedded runner
and the client render them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import StorageFault


@dataclass(frozen=True)
class Column:
    """A result column: its name and the table (or alias) it came from.

    origin is None for computed columns (expressions, aggregates, literals).
    """

    name: str
    origin: str | None = None


@dataclass
class Relation:
    """A named table of values: rows are lists in column order.

    Values are int, float, str (dates are 'YYYY-MM-DD' strings), bool, None.
    """

    name: str
    columns: list[Column]
    rows: list[list] = field(default_factory=list)


@dataclass
class Outcome:
    """The result of one statement.

    ok: whether it succeeded. message: the success text, or the error text
    starting with 'Hadisoana : '. relation: set for queries (alaivo, asehoy).
    fault: for a failure caused by this server's own files (an
    `engine.errors.StorageFault`: object, operation, reason), so the server
    can report it; never sent on the wire beyond the message's marker.
    """

    ok: bool
    message: str
    relation: Relation | None = None
    fault: StorageFault | None = field(default=None, repr=False, compare=False)

    @classmethod
    def success(cls, message: str, relation: Relation | None = None) -> Outcome:
        return cls(True, message, relation)

    @classmethod
    def failure(cls, message: str, fault: StorageFault | None = None) -> Outcome:
        return cls(False, message, None, fault)
