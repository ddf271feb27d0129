"""Result sets as the client can draw them besides the engine's boxed table.

`render_expanded`: one block per row, a column per line (psql's `\\x`),
for rows wider than the terminal. `render_csv`: RFC 4180 through the csv
module (a header line, CRLF line ends, quotes only where needed; NULL is
an empty field). The boxed table itself is the engine's
(`engine.evaluation.render.render_table`), shared with `--embedded`.
"""

from __future__ import annotations

import re

from engine.evaluation.outcome import Relation
from engine.evaluation.render import cell_text, display_width, render_table
from engine.evaluation.values import format_value, visible_text


def table_width(table: str) -> int:
    """Columns taken by a table drawn by `render_table` (its first line is the widest)."""
    return display_width(table.split("\n", 1)[0])


def render_expanded(relation: Relation, terminal_columns: int | None = None) -> str:
    """Each row as a block `-[ ANDALANA n ]-` then `column | value` lines; the row count last.

    The block's rule is as wide as its widest line, but never wider than the terminal
    (a long value wraps; its rule folded over several lines too).
    """
    names = [visible_text(column.name) for column in relation.columns]
    name_width = max((display_width(name) for name in names), default=0)
    blocks = []
    for number, row in enumerate(relation.rows, 1):
        lines = [name + " " * (name_width - display_width(name)) + " | "
                 + cell_text(value)
                 for name, value in zip(names, row, strict=True)]
        width = max((display_width(line) for line in lines), default=0)
        if terminal_columns:
            width = min(width, terminal_columns)
        header = f"-[ ANDALANA {number} ]"
        blocks.append(header + "-" * max(0, width - len(header)))
        blocks.extend(lines)
    blocks.append(f"({len(relation.rows)} andalana)")
    return "\n".join(blocks)


def render_csv(relation: Relation) -> str:
    """RFC 4180 text: a header line, then one line per row, each ended by CRLF.

    Fields are quoted only when needed, and always for an empty string, so
    that NULL (an empty field, unquoted) and '' (`""`) stay apart, as in
    PostgreSQL's CSV.
    """
    lines = [",".join(_csv_field(column.name) for column in relation.columns)]
    lines += [",".join("" if value is None else _csv_field(format_value(value)) for value in row)
              for row in relation.rows]
    return "".join(line + "\r\n" for line in lines)


def _csv_field(text: str) -> str:
    if text and not _CSV_SPECIAL.search(text):
        return text
    return '"' + text.replace('"', '""') + '"'


_CSV_SPECIAL = re.compile(r'[,"\r\n]')


def render_rows(relation: Relation, expanded: str, terminal_columns: int | None) -> str:
    """The table, or the expanded form when `expanded` is "on" or ("auto" and it is too wide)."""
    if expanded == "on":
        return render_expanded(relation, terminal_columns)
    table = render_table(relation)
    if expanded == "auto" and terminal_columns and relation.rows \
            and table_width(table) > terminal_columns:
        return render_expanded(relation, terminal_columns)
    return table
