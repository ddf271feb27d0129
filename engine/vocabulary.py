"""The words of the language that mean something past the parser, each mapping defined once.

The syntax tree holds language-neutral values: a set operation's `op`
('union', ...), a join's `kind` ('inner', ...), the object kind a `Show` or
`Drop` names ('database', 'table', 'domain', 'view': the storage's kinds).
The lexer and parser turn the Malagasy words into those values with the
maps here; the evaluation, the executor and the storage's messages turn them
back into words with the reverse maps, so a word is spelt in one place only.

A shared leaf of the engine, like engine/errors.py (it imports nothing):
the language, the evaluation and the storage (`OBJECT_KIND_WORDS` in its
name errors) all read it, and the storage need not depend on the language.
"""

from __future__ import annotations

# `tahiry`, `tabilao`, `efitra`, `jery`: the storage's object kinds.
OBJECT_KIND_WORDS: dict[str, str] = {
    "database": "tahiry", "table": "tabilao", "domain": "efitra", "view": "jery",
}
WORD_OBJECT_KINDS: dict[str, str] = {word: kind for kind, word in OBJECT_KIND_WORDS.items()}
# The stored kinds of the accounts (docs/STORAGE.md "Accounts"): an account
# (`mpampiasa`) and a grant of a right on a database (`zo`).
RIGHTS_KIND_WORDS: dict[str, str] = {"account": "mpampiasa", "grant": "zo"}
# The rights (`omeo NAME zo mamaky|manoratra ao@ DB`): manoratra implies mamaky.
RIGHT_WORDS: dict[str, str] = {"mamaky": "read", "manoratra": "write"}
WORD_OF_RIGHT: dict[str, str] = {right: word for word, right in RIGHT_WORDS.items()}

# `ankambana`, `analana`, `atifitra` (also `+`, `-`, `^`).
SET_OPERATOR_WORDS: dict[str, str] = {
    "ankambana": "union", "analana": "except", "atifitra": "intersect",
}
SET_OPERATOR_SYMBOLS: dict[str, str] = {"+": "union", "-": "except", "^": "intersect"}
SET_OPERATION_WORD: dict[str, str] = {op: word for word, op in SET_OPERATOR_WORDS.items()}

# `tonona:KIND`; two kinds have a second spelling.
JOIN_KINDS: dict[str, str] = {
    "anatiny": "inner",
    "avia": "left",
    "ankavia": "left",
    "avanana": "right",
    "ankavanana": "right",
    "feno": "full",
    "natoraly": "natural",
}
# The spelling messages use for each kind (the first one above).
JOIN_KIND_WORD: dict[str, str] = {}
for _word, _kind in JOIN_KINDS.items():
    JOIN_KIND_WORD.setdefault(_kind, _word)
del _word, _kind
