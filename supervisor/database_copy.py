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
"""

from __future__ import annotations

from nodes.client.params import literal

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
