"""The server's responses, encoded with the bytes that never change cached (`ResponseEncoder`).

`encode_outcome` (nodes/protocol/wire.py) builds every response from
scratch: a page header, a JSON object holding the relation's name, page
numbers, column list and rows, the end line, then the message. A point read
answered by a plan (engine/session.py) gives a one-page relation whose name
and columns are the same objects request after request (the plan's), and a
message such as `1 andalana`: only the rows change. `ResponseEncoder` keeps,
per relation name and columns, the bytes before the rows and those after
them, cut from what `encode_outcome` itself gives for that relation without
rows; a response is then those bytes around `orjson.dumps(rows)` and the
message's bytes (also kept: a pure function of the message). The result is
byte for byte `encode_outcome`'s (the JSON object is written in key order
with `rows` last, and the page header of one page does not depend on how
many rows it holds); anything else (several pages, a value orjson cannot
write, no relation) goes through `encode_outcome`.
"""

from __future__ import annotations

import orjson

from engine.evaluation.outcome import Outcome, Relation
from nodes.protocol import DEFAULT_PAGE_ROWS, encode_message, encode_outcome

# Relation shapes (name and columns) and messages kept; past that they start over.
MAX_SHAPES = 256
MAX_MESSAGES = 1024
MAX_MESSAGE_CHARS = 80   # longer ones (errors quoting values) are rarely repeated
_ROWS_CUT = b'"rows":[]}'
# (the columns, held so their ids are not reused while cached; bytes before the rows; after them)
Shape = tuple[tuple, bytes, bytes]
_UNSEEN: Shape = ((), b"", b"")


class ResponseEncoder:
    """`encode_outcome` with the header and end of one-page relations and the messages cached.

    One per server (not thread-safe on its own: the server encodes on its
    event loop and on its engine thread, and a race only costs a rebuilt
    entry, both threads computing the same bytes).
    """

    def __init__(self, page_rows: int = DEFAULT_PAGE_ROWS):
        self.page_rows = max(1, page_rows)
        # (name, id of each column) -> its `Shape`, None when encode_outcome answers.
        self._shapes: dict[tuple, Shape | None] = {}
        self._messages: dict[str, bytes] = {}

    def encode(self, outcome: Outcome) -> bytes:
        """The complete response to one statement: exactly `encode_outcome(outcome, page_rows)`."""
        relation = outcome.relation
        if relation is None:
            return self.message(outcome.message)
        rows = relation.rows
        if len(rows) > self.page_rows:
            return encode_outcome(outcome, self.page_rows)
        columns = relation.columns
        key = (relation.name, *map(id, columns))
        shape = self._shapes.get(key, _UNSEEN)
        if shape is _UNSEEN:
            shape = self._shape(key, relation)
        if shape is None:
            return encode_outcome(outcome, self.page_rows)
        try:
            body = orjson.dumps(rows)
        except TypeError:   # an integer beyond 64 bits: the protocol's own fallback
            return encode_outcome(outcome, self.page_rows)
        return b"".join((shape[1], body, shape[2], self.message(outcome.message)))

    def message(self, message: str) -> bytes:
        """`encode_message(message)`, kept for the next time when short (`N andalana`)."""
        encoded = self._messages.get(message)
        if encoded is None:
            if len(message) > MAX_MESSAGE_CHARS:
                return encode_message(message)
            if len(self._messages) >= MAX_MESSAGES:
                self._messages.clear()
            encoded = self._messages[message] = encode_message(message)
        return encoded

    def _shape(self, key: tuple, relation: Relation) -> Shape | None:
        """The bytes around the rows of a one-page `relation`, cut from `encode_outcome`'s;
        None when they cannot be cut (then `encode_outcome` answers)."""
        if len(self._shapes) >= MAX_SHAPES:
            self._shapes.clear()
        columns = list(relation.columns)
        empty = encode_outcome(Outcome.success("", Relation(relation.name, columns, [])),
                               self.page_rows)
        tail = encode_message("")
        shape: Shape | None = None
        at = empty.rfind(_ROWS_CUT)
        if at >= 0 and empty.endswith(tail):
            cut = at + len(_ROWS_CUT) - 3   # after `"rows":`
            shape = (tuple(columns), empty[:cut], empty[cut + 2:len(empty) - len(tail)])
        self._shapes[key] = shape
        return shape
