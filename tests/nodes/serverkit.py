"""In-process DatabaseServer for tests of its group commit, on real files.

`prepared_server(root, *statements)` runs the setup statements through a
Session of their own, then starts an inline server on that data folder;
`session(server)` is a client session using database "s"; `run(server,
(session, text), ...)` runs the pairs as one batch and decodes the responses.
"""

from __future__ import annotations

import logging

from engine.session import Session
from engine.storage.object_state import current_document
from engine.storage.store import Store
from nodes.protocol.wire import decode_responses
from nodes.server.node import DatabaseServer, _Job


def make_server(root, peers=None, journal_writes: bool = True) -> DatabaseServer:
    """An inline server "m1" over the data folder `root`.

    `journal_writes=False`: every write is a whole file (the rename path of
    format 1, still used for creates, drops, views and domains).
    """
    return DatabaseServer("m1", Store(root, peers=peers, journal_writes=journal_writes),
                          logging.getLogger("test"), inline=True)


def prepared_server(root, *statements: str, journal_writes: bool = True) -> DatabaseServer:
    """A server over `root` after `statements` ran there (each must succeed)."""
    setup = Session(Store(root))
    for text in statements:
        outcome = setup.execute_one(text)
        assert outcome.ok, f"{text!r} -> {outcome.message}"
    return make_server(root, journal_writes=journal_writes)


def table_rows(root, table: str = "t", database: str = "s") -> list[list]:
    """The rows of a table as its files hold them (snapshot and journal)."""
    return current_document(root / database / "tables" / f"{table}.json")["rows"]


def session(server: DatabaseServer, database: str = "s") -> Session:
    """A client session of `server` with `database` in use."""
    result = Session(server.store)
    result.current_database = database
    return result


def run(server: DatabaseServer, *pairs):
    """Run (session, text) pairs as one batch; decoded responses."""
    raw = server.run_batch([_Job(s, text, None) for s, text in pairs])
    return [decode_responses(item)[0] for item in raw]
