"""Column domains: their JSON form, their validation, and checking values.

A domain is a list of atoms (JSON dicts, see docs/STORAGE.md):

    {"type": "ISA", "min": x, "max": y}            numbers in [x, y]; None is open
    {"type": "LAHATSORATRA", "min": x, "max": y}   strings, length in code points
    {"type": "DATY"}                               'YYYY-MM-DD' real calendar dates
    {"type": "TANISA", "values": [...]}            exact membership ('1' is not 1)

A value fits a domain if it fits any atom (the first that accepts decides);
NULL fits every domain. Named domains (`manamboara efitra`) are copied into
a table's columns when the table is created, so a table file is
self-contained.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Iterable
from typing import TypeGuard

from engine.errors import TahiryError
from engine.evaluation.values import format_number, literal_text
from engine.language import ast
from engine.language.english import SQL_TYPES
from engine.language.hints import name_hint
from engine.language.messages import text

# Stored integers are signed 64-bit: JSON readers (orjson) turn larger ones into floats.
MIN_STORED_INT = -2**63
MAX_STORED_INT = 2**63 - 1
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

DomainLookup = Callable[[str], "list[dict] | None"]


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --------------------------------------------------------------------------
# From the AST to JSON atoms


def _sql_type_hint(name: str) -> str:
    """The hint for a SQL type used as a domain name (`INT`), else ""."""
    domain = SQL_TYPES.get(name.lower())
    return text("hint_english_keyword", keyword=domain, word=name) if domain else ""


def domain_to_json(spec: ast.DomainSpec, lookup: DomainLookup,
                   names: Callable[[], Iterable[str]] = tuple) -> list[dict]:
    """Validate a domain spec and turn it into JSON atoms.

    `lookup(name)` returns the atoms of a named domain or None if there is
    none; named atoms are replaced by a copy of those atoms. `names()`: the
    database's domains (read only for the hint of one that does not exist).
    """
    atoms: list[dict] = []
    for atom in spec.atoms:
        if isinstance(atom, ast.NamedAtom):
            named = lookup(atom.name)
            if named is None:
                # `INT` (a SQL type), or a domain of the database misspelled (`kilasyy`).
                hint = _sql_type_hint(atom.name) or name_hint(atom.name, names())
                raise TahiryError(f"Tsy misy ny efitra : {atom.name}" + ("." + hint if hint else ""))
            atoms.extend(dict(item) for item in named)
        else:
            atoms.append(_atom_to_json(atom))
    if not atoms:
        raise TahiryError("Efitra foana tsy azo ekena")
    return atoms


def _atom_to_json(atom: ast.Atom) -> dict:
    if isinstance(atom, ast.NumberAtom):
        _check_bounds("ISA", atom.low, atom.high, integers=False)
        return {"type": "ISA", "min": atom.low, "max": atom.high}
    if isinstance(atom, ast.TextAtom):
        _check_bounds("LAHATSORATRA", atom.low, atom.high, integers=True)
        return {"type": "LAHATSORATRA", "min": atom.low, "max": atom.high}
    if isinstance(atom, ast.DateAtom):
        return {"type": "DATY"}
    if isinstance(atom, ast.EnumAtom):
        if not atom.values:
            raise TahiryError("TANISA() foana : tsy maintsy misy sanda iray farafahakeliny")
        for value in atom.values:
            if not (_is_number(value) or isinstance(value, str)):
                raise TahiryError(f"Sanda tsy mety ao amin'ny TANISA : {format_value(value)}")
            _check_storable_number(value)
        return {"type": "TANISA", "values": list(atom.values)}
    raise TahiryError(f"Efitra tsy fantatra : {atom!r}")


def _check_bounds(type_name: str, low: float | None, high: float | None, integers: bool) -> None:
    for bound in (low, high):
        if bound is None:
            continue
        if not _is_number(bound) or (isinstance(bound, float) and not math.isfinite(bound)):
            raise TahiryError(f"Fetra tsy mety ao amin'ny {type_name} : {format_value(bound)}")
        if integers and not isinstance(bound, int):
            raise TahiryError(
                f"Ny fetran'ny {type_name} dia tsy maintsy isa feno : {format_value(bound)}")
    if low is not None and high is not None and low > high:
        raise TahiryError(
            f"Ny {type_name}({format_value(low)},{format_value(high)}) dia tsy mety : "
            f"min > max")


def check_column_names(names: list[str]) -> None:
    """A table needs columns, each named once (case-insensitively)."""
    if not names:
        raise TahiryError("Tabilao tsy misy tsanganana tsy azo ekena")
    seen: dict[str, str] = {}
    for name in names:
        folded = name.casefold()
        if folded in seen:
            raise TahiryError(f"Ny tsanganana '{name}' dia voatonona indroa")
        seen[folded] = name


# --------------------------------------------------------------------------
# Checking values


def _check_storable_number(value: object) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise TahiryError(f"Isa tsy azo tehirizina : {value}")
    if (isinstance(value, int) and not isinstance(value, bool)
            and not MIN_STORED_INT <= value <= MAX_STORED_INT):
        raise TahiryError(f"Lehibe loatra ny isa {value} (64 bits farafahabetsany)")


def only_dates(domain: list[dict]) -> bool:
    """Whether a column's domain holds dates and nothing else (`DATY`)."""
    return bool(domain) and all(atom.get("type") == "DATY" for atom in domain)


def is_date(value: str) -> bool:
    if not _DATE_RE.fullmatch(value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def atom_accepts(atom: dict, value: object) -> bool:
    kind = atom["type"]
    if kind == "ISA":
        if not _is_number(value):
            return False
        low, high = atom.get("min"), atom.get("max")
        return (low is None or value >= low) and (high is None or value <= high)
    if kind == "LAHATSORATRA":
        if not isinstance(value, str):
            return False
        length = len(value)
        low, high = atom.get("min"), atom.get("max")
        return (low is None or length >= low) and (high is None or length <= high)
    if kind == "DATY":
        return isinstance(value, str) and is_date(value)
    if kind == "TANISA":
        for allowed in atom["values"]:
            if isinstance(allowed, str):
                if isinstance(value, str) and value == allowed:
                    return True
            elif _is_number(value) and value == allowed:
                return True
        return False
    return False


def check_value(column: str, value: object, domain: list[dict]) -> object:
    """Return `value` if it fits `domain`, else raise an error naming all three."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TahiryError(
            f"Ny sanda {format_value(value)} (boolean) dia tsy azo tehirizina "
            f"ao amin'ny tsanganana '{column}'")
    _check_storable_number(value)
    for atom in domain:
        if atom_accepts(atom, value):
            return value
    raise TahiryError(
        f"Ny sanda {format_value(value)} dia tsy mifanaraka amin'ny efitra "
        f"{format_domain(domain)} an'ny tsanganana '{column}'" + _refused_hint(value, domain))


_NUMBER_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def _refused_hint(value: object, domain: list[dict]) -> str:
    """How the value refused was meant to be written, when that is plain ("" if not)."""
    # A DATY column refusing a number (`2024-09-01` unquoted is 2014) or another form
    # (`'2024-9-1'`, `'01/09/2024'`): how a date is written, as its comparisons say.
    if all(atom.get("type") == "DATY" for atom in domain):
        return text("hint_date_form")
    # `'14'` into a number column, `2024` into a text one: the other form would fit.
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value):
        number = float(value) if "." in value else int(value)
        if any(atom_accepts(atom, number) for atom in domain):
            return text("hint_unquoted_number", number=value)
    elif _is_number(value):
        written = format_value(value)
        if any(atom_accepts(atom, written) for atom in domain):
            return text("hint_quoted_text", word=written)
    return ""


def column_checker(domain: list[dict], max_string_length: int,
                   full_check: Callable[[object], object]) -> Callable[[object], object]:
    """`full_check` for one column, answered without it for the values a domain of one
    ISA or LAHATSORATRA atom plainly accepts (NULL too).

    A value it does not plainly accept (a bool, a number out of range or
    not storable, a string too long, a domain of another shape) goes to
    `full_check` (`check_value` with the size limit), which accepts it or
    raises the one error message: this only answers sooner, never differently.
    Made once per table columns (the executor keeps them), it spares an
    insert the generic walk over the atoms for each value.
    """
    if len(domain) != 1 or domain[0]["type"] not in ("ISA", "LAHATSORATRA"):
        return full_check
    atom = domain[0]
    low, high = atom.get("min"), atom.get("max")
    if atom["type"] == "ISA":
        def check_number(value: object) -> object:
            kind = type(value)
            if (kind is int and MIN_STORED_INT <= value <= MAX_STORED_INT  # type: ignore[operator]
                    or kind is float and math.isfinite(value)):  # type: ignore[arg-type]
                if (low is None or value >= low) and (high is None or value <= high):
                    return value
            elif value is None:
                return None
            return full_check(value)
        return check_number

    def check_text(value: object) -> object:
        if type(value) is str:
            length = len(value)
            if length <= max_string_length and (low is None or length >= low) \
                    and (high is None or length <= high):
                return value
        elif value is None:
            return None
        return full_check(value)
    return check_text


# --------------------------------------------------------------------------
# Text forms (error messages)


def format_value(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return "'" + literal_text(shown).replace("'", "''") + "'"   # as typed, on one line
    if _is_number(value) and math.isfinite(value):
        return format_number(value)  # as results print them: never an exponent
    return repr(value)


def _format_bound(bound: object) -> str:
    return "null" if bound is None else format_value(bound)


def format_atom(atom: dict) -> str:
    kind = atom["type"]
    if kind in ("ISA", "LAHATSORATRA"):
        return f"{kind}({_format_bound(atom.get('min'))},{_format_bound(atom.get('max'))})"
    if kind == "TANISA":
        shown = []
        for value in atom["values"]:
            shown.append('"' + value + '"' if isinstance(value, str) else format_value(value))
        return "TANISA(" + ",".join(shown) + ")"
    return kind


def format_domain(domain: list[dict]) -> str:
    return ":".join(format_atom(atom) for atom in domain)
