"""Which account names the supervisor accepts (the topology's `accounts.admin`, a class's CSV).

An account name is named in statements (`omeo NAME zo mamaky ao@ DB;`), so
it has the shape of an identifier of the language (engine/storage/names.py:
a letter or `_`, then letters, digits or `_`), at most as long as a login
carries (64 characters, nodes/protocol/login.py), and is not one of the
language's keywords. Checked before anything is done with it, so a
bad name changes nothing.
"""

from __future__ import annotations

from engine.language.lexer import KEYWORDS
from engine.storage.names import is_identifier
from nodes.protocol.login import MAX_NAME_CHARS  # what `.login NAME` carries


def name_problem(name: str) -> str | None:
    """What is wrong with `name` as an account name, or None if it is a good one."""
    if not name:
        return "an empty name"
    if not is_identifier(name):
        return (f"{name!r} is not an account name (a letter or '_', then letters, digits "
                f"or '_')")
    if len(name) > MAX_NAME_CHARS:
        return f"{name[:20]!r}... is too long for an account name (at most {MAX_NAME_CHARS} characters)"
    if name.lower() in KEYWORDS:
        return f"{name!r} is a word of the language, not an account name"
    return None
