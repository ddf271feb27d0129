"""Outcomes as text: boxed tables for people, JSON lines for programs.

Used by the embedded runner (`python -m engine`) and by the client.
"""

from __future__ import annotations

import json

import orjson
import wcwidth

from engine.evaluation.outcome import Outcome, Relation
from engine.evaluation.values import format_value, json_number, literal_text, visible_text


def cell_text(value: object) -> str:
    """A value as one line of a table cell: escaped like a literal, controls made visible."""
    return literal_text(format_value(value))


def display_width(text: str) -> int:
    """Terminal columns taken by `text`: wide East Asian characters and emoji count 2,
    combining marks, zero-width joiners and variation selectors 0, a joined emoji
    sequence (👩‍💻) or a flag (🇲🇬) as the one picture it is (the wcwidth library)."""
    if text.isascii() and text.isprintable():
        return len(text)
    return max(0, wcwidth.width(text))


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - display_width(text))
    return fill + text if right else text + fill


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric_column(rows: list[list], index: int) -> bool:
    """Numbers (and NULLs) only, at least one number: drawn right-aligned."""
    seen_number = False
    for row in rows:
        value = row[index]
        if _is_number(value):
            seen_number = True
        elif value is not None:
            return False
    return seen_number


def render_table(relation: Relation) -> str:
    """An aligned boxed table followed by its row count; numbers right-aligned."""
    headers = [visible_text(column.name) for column in relation.columns]
    cells = [[cell_text(value) for value in row] for row in relation.rows]
    widths = [display_width(header) for header in headers]
    for row in cells:
        for index, text in enumerate(row):
            widths[index] = max(widths[index], display_width(text))
    numeric = [_numeric_column(relation.rows, index) for index in range(len(headers))]
    rule = "+" + "+".join("-" * (width + 2) for width in widths) + "+"
    lines = [rule,
             "| " + " | ".join(_pad(h, w, False) for h, w in zip(headers, widths, strict=True)) + " |",
             rule]
    for row in cells:
        lines.append("| " + " | ".join(
            _pad(text, widths[i], numeric[i]) for i, text in enumerate(row)) + " |")
    if cells:
        lines.append(rule)
    count = len(relation.rows)
    lines.append(f"({count} andalana)")
    return "\n".join(lines)


def table_note(outcome: Outcome) -> str:
    """What a relation's success message says beyond the row count its table shows ("" if
    nothing): the note of a comparison with `null` (engine/evaluation/null_note.py).

    The wire carries it only in the message, `N andalana` then the note, so
    the client finds it there as the runner does.
    """
    relation = outcome.relation
    if not outcome.ok or relation is None:
        return ""
    count = f"{len(relation.rows)} andalana "
    return outcome.message[len(count):].strip() if outcome.message.startswith(count) else ""


def render_outcome(outcome: Outcome) -> str:
    """What the runner prints for one outcome in table format."""
    if not outcome.ok:
        return outcome.message
    if outcome.relation is not None:
        note = table_note(outcome)
        table = render_table(outcome.relation)
        return f"{table}\n{note}" if note else table
    return outcome.message


def outcome_to_json(outcome: Outcome) -> dict:
    if not outcome.ok:
        return {"ok": False, "error": outcome.message}
    shape: dict = {"ok": True, "message": outcome.message}
    if outcome.relation is not None:
        shape["columns"] = [column.name for column in outcome.relation.columns]
        rows = outcome.relation.rows
        if any(type(value) is float for row in rows for value in row):
            rows = [[json_number(value) if type(value) is float else value for value in row]
                    for row in rows]
        shape["rows"] = rows
    return shape


def render_json(outcome: Outcome) -> str:
    """One line of JSON: {"ok":..., "message"/"error":..., "columns", "rows"}."""
    shape = outcome_to_json(outcome)
    try:
        return orjson.dumps(shape).decode("utf-8")
    except TypeError:  # integers beyond 64 bits
        return json.dumps(shape, ensure_ascii=False, separators=(",", ":"))
