"""A database as a script of statements that recreates it (`accounts remove-class --keep`).

What a teacher keeps of a student's work at the end of a term: one `.tah`
file per database, read through any DB-API connection that may read it
(the administrator's), with nothing but statements of the language:

    manamboara tahiry rabe_db;
    ampiasao rabe_db;
    manamboara tabilao naoty (id LAHATSORATRA(2,5), naoty ISA(0,20):TANISA("ABS"));
    manampia ao@ naoty (id, naoty) sanda
      ('E1', 12),
      ('E2', 'ABS');

`./tahiry client -f FILE` (or `python -m engine --data DIR -f FILE`) loads
it back. Each column keeps its domain as `asehoy ny tsanganana` shows it
(a named domain, `efitra`, is written out in full); values are written by
the driver's own literals (nodes/client/params.py), so a quote, a
backslash or a NULL comes back as it was. A view's definition cannot be
read back from a server: the script names the views it leaves out.

Replication is asynchronous: a row a student wrote on one server a moment
before the copy may not be on the server a read reaches yet. So the copy
is read from every server (`settled_script`) and taken once they all give
the same script: the newest write of each table is on the server that made
it, so copies that agree hold it. They are read again while they differ
(the student's account is removed first: nothing new comes), and the
database is not copied, nor dropped, if they still differ at the deadline
or a server cannot be read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from nodes.client.params import literal

SETTLE_S = 10.0         # how long the servers' copies may disagree (replication catching up)
SETTLE_PAUSE_S = 0.1
ROWS_PER_INSERT = 500   # one statement per this many rows (far below Limits.max_insert_rows)
DESCRIBE = "asehoy ny tsanganana"
TABLE_KIND = "tabilao"


def _fetch(cursor, statement: str) -> list[tuple]:
    cursor.execute(statement)
    return list(cursor.fetchall()) if cursor.description else []


def database_script(connection, database: str, header: list[str]) -> str:
    """The statements that recreate `database`, tables and rows, after `header`'s comment lines.

    Leaves the connection in `database` (its current database is changed)."""
    cursor = connection.cursor()
    cursor.execute(f"ampiasao {database}")
    tables: dict[str, list[tuple[str, str]]] = {}
    views: list[str] = []
    for name, kind, column, domain in _fetch(cursor, DESCRIBE):
        if kind != TABLE_KIND:
            if name not in views:
                views.append(name)
        elif column is not None:
            tables.setdefault(name, []).append((column, domain))
    lines = [f"-- {line}" for line in header]
    if views:
        lines.append(f"-- not kept (a view's definition cannot be read back): {', '.join(views)}")
    lines += [f"manamboara tahiry {database};", f"ampiasao {database};"]
    for table, columns in tables.items():
        names = ", ".join(column for column, _ in columns)
        lines.append(f"manamboara tabilao {table} ("
                     + ", ".join(f"{column} {domain}" for column, domain in columns) + ");")
        rows = _fetch(cursor, f"alaivo {names} ao@ {table}")
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start:start + ROWS_PER_INSERT]
            values = ",\n".join("  (" + ", ".join(literal(value) for value in row) + ")"
                                for row in chunk)
            lines.append(f"manampia ao@ {table} ({names}) sanda\n{values};")
    return "\n".join(lines) + "\n"


class CopiesDisagree(Exception):
    """The servers' copies of a database did not agree in time (one sentence)."""


def settled_script(servers: Sequence, database: str, header: list[str],
                   deadline_s: float = SETTLE_S, pause_s: float = SETTLE_PAUSE_S,
                   clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> str:
    """`database_script` as every server in `servers` (one connection each) gives it, once
    they all give the same (the module docstring says why); CopiesDisagree otherwise."""
    if not servers:
        raise CopiesDisagree(f"no server to copy {database} from")
    give_up = clock() + deadline_s
    while True:
        scripts = {database_script(connection, database, header) for connection in servers}
        if len(scripts) == 1:
            return scripts.pop()
        if clock() >= give_up:
            raise CopiesDisagree(f"the servers' copies of {database} still differ after "
                                 f"{deadline_s:g} s (replication behind, or stopped: see "
                                 f"`./tahiry status`)")
        sleep(pause_s)
