"""English SQL keywords and the Malagasy words they are written with in Tahiry.

`english_keyword("select")` is `"alaivo"`; the hint of docs/LANGUAGE.md 5b
("in Tahiry, 'select' is written 'alaivo'") and a client's `fanampiana
select` both read this table. `written_otherwise("distinct")` is how a query
does what a SQL keyword without a Tahiry word does (a grouping). It imports nothing, so a client loads it
without the parser.

`topic_of` gives the one word a help topic is filed under (`from` -> `ao`,
`left` -> `tonona`, `drop` -> `ravao`).
"""

from __future__ import annotations

# Every SQL keyword a student may type, with the Malagasy word(s) it is written with.
ENGLISH_KEYWORDS: dict[str, str] = {
    "select": "alaivo", "from": "ao@", "where": "rehefa", "as": "antso",
    "join": "tonona", "inner": "tonona:anatiny", "left": "tonona:avia",
    "right": "tonona:avanana", "full": "tonona:feno", "outer": "tonona:feno",
    "natural": "tonona:natoraly", "cross": "tonona", "on": "ka",
    "group": "vondrona", "order": "alaharo", "asc": "miakatra", "desc": "midina",
    "limit": "fetra", "offset": "fetra", "top": "fetra",
    "union": "ankambana", "except": "analana", "minus": "analana", "intersect": "atifitra",
    "insert": "manampia", "into": "ao@", "values": "sanda",
    "update": "havaozy", "set": "ova", "delete": "fafao",
    "create": "manamboara", "drop": "ravao ny", "show": "asehoy ny",
    "describe": "asehoy ny tsanganana ao@", "use": "ampiasao",
    "database": "tahiry", "databases": "tahiry", "schema": "tahiry", "table": "tabilao",
    "tables": "tabilao", "view": "jery", "views": "jery", "domain": "efitra",
    "columns": "tsanganana", "and": "ary", "or": "na", "not": "tsy", "is": "dia",
    "help": "fanampiana",
    # accounts (docs/LANGUAGE.md 2, "Accounts and rights"); `user` and `password` are
    # left out on purpose: they name columns too often to be blamed in a hint.
    "grant": "omeo", "revoke": "esory",
}

# English words of the account statements, said only where that statement expects their
# Tahiry word (`tenimiafina` after the account's name): elsewhere `password`, `user`,
# `read` name columns too often (`hint_english_keyword`).
ACCOUNT_ENGLISH: dict[str, str] = {
    "password": "tenimiafina", "admin": "mpitantana", "administrator": "mpitantana",
    "read": "mamaky", "write": "manoratra", "user": "mpampiasa", "right": "zo",
}


# SQL type names a student may write for a domain (`INT`, `varchar(20)`), and the Tahiry
# domain they mean (the hint `hint_english_keyword`, docs/LANGUAGE.md 5b).
SQL_TYPES: dict[str, str] = {
    **dict.fromkeys(("int", "integer", "bigint", "smallint", "tinyint", "float", "double",
                     "real", "numeric", "decimal", "number"), "ISA(null,null)"),
    **dict.fromkeys(("varchar", "char", "text", "string", "nvarchar", "character"),
                    "LAHATSORATRA(null,null)"),
    **dict.fromkeys(("date", "datetime", "timestamp"), "DATY"),
}

# Operators of SQL (`<>`) and C (`==`) and how Tahiry writes them (the hint
# `hint_english_keyword`, given by the parser where the second character is unexpected).
SQL_OPERATORS: dict[str, str] = {"<>": "!=", "==": "=", "=>": ">=", "=<": "<="}
# Operators of mathematics and C the lexer does not know (a syntax error at their first
# character): the ones Tahiry writes instead.
FOREIGN_OPERATORS: dict[str, str] = {"\u2265": ">=", "\u2264": "<=", "\u2260": "!=", "&&": "ary"}


# SQL's column constraints: Tahiry has none, a column is its domain (the hint
# `hint_no_constraint`, for a syntax error in a `manamboara` definition).
SQL_CONSTRAINTS = frozenset((
    "primary", "foreign", "references", "unique", "not", "default", "check", "constraint",
    "auto_increment", "autoincrement", "identity"))
# ... written first in a definition (`, primary key (id)`), as a column's name would be.
SQL_TABLE_CONSTRAINTS = frozenset(("primary", "foreign", "constraint"))


# SQL keywords Tahiry has no word for, with how a query says the same
# (the hint `hint_written_otherwise`): each example runs as it is written.
WRITTEN_OTHERWISE: dict[str, str] = {
    "distinct": "alaivo a, b ao@ t vondrona a, b",
    "having": "alaivo * ao@ (alaivo a, count(*) antso n ao@ t vondrona a) x rehefa x.n > 1",
    "in": "alaivo * ao@ t rehefa a = 1 na a = 2",
    "between": "alaivo * ao@ t rehefa a >= 1 ary a <= 5",
}


def written_otherwise(word: str) -> str | None:
    """How Tahiry writes what the SQL keyword `word` does when it has no word for it, else None."""
    return WRITTEN_OTHERWISE.get(word.lower())


def english_keyword(word: str) -> str | None:
    """The Malagasy keyword for an English SQL keyword (`select` -> `alaivo`), else None."""
    return ENGLISH_KEYWORDS.get(word.lower())


def topic_of(word: str) -> str | None:
    """The first Malagasy word of an English keyword's spelling, bare (`from` -> `ao`,
    `left` -> `tonona`, `drop` -> `ravao`); None if `word` is not an English keyword."""
    malagasy = english_keyword(word)
    if malagasy is None:
        return None
    return malagasy.split()[0].split(":")[0].rstrip("@")
