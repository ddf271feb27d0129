"""Tahiry's database engine: statements in, outcomes out, objects in files; no networking.

Three packages (docs/ARCHITECTURE.md): `engine.language` (text -> syntax
tree), `engine.evaluation` (a tree run against the stored objects) and
`engine.storage` (the data directory: snapshots, journals, group commit,
peers); the leaves `engine.errors`, `engine.lru` and `engine.vocabulary`
(the words the syntax tree's values stand for) are shared by all three.
`engine.session.Session` is the one entry point: `Session(Store(root))
.execute(text) -> list[Outcome]`.

The names most callers need are importable from here (`from engine import
Session, Store, Outcome, TahiryError`). They are loaded on first use
(PEP 562 `__getattr__`): importing `engine.errors` alone, as a balancer or
a client does, must not load the parser and the storage, and this package
is imported before any of its submodules, so it must not import them
itself (an import cycle otherwise).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# name -> the module that defines it
_EXPORTS = {
    "Session": "engine.session",
    "Store": "engine.storage.store",
    "Outcome": "engine.evaluation.outcome",
    "Relation": "engine.evaluation.outcome",
    "Column": "engine.evaluation.outcome",
    "EngineError": "engine.errors",
    "TahiryError": "engine.errors",
    "TahirySyntaxError": "engine.errors",
    "StorageFault": "engine.errors",
    "ERROR_PREFIX": "engine.errors",
    "StatementParser": "engine.language.parser",
    "StatementSplitter": "engine.language.script",
    "split_statements": "engine.language.script",
    "normalise_statement": "engine.language.script",
    "classify": "engine.language.classify",
    "StatementClass": "engine.language.classify",
    # accounts (docs/SECURITY.md "Accounts"; docs/LANGUAGE.md "Accounts and rights")
    "Identity": "engine.storage.accounts",
    "verify_login": "engine.storage.accounts",
    "ensure_first_admin": "engine.storage.accounts",
    "rights_generation": "engine.storage.accounts",
    "redact_secrets": "engine.language.secrets",
}

__all__ = [
    "ERROR_PREFIX", "Column", "EngineError", "Identity", "Outcome", "Relation", "Session",
    "StatementClass", "StatementParser", "StatementSplitter", "StorageFault", "Store",
    "TahiryError", "TahirySyntaxError", "classify", "ensure_first_admin", "normalise_statement",
    "redact_secrets", "rights_generation", "split_statements", "verify_login",
]

if TYPE_CHECKING:
    from engine.errors import (
        ERROR_PREFIX,
        EngineError,
        StorageFault,
        TahiryError,
        TahirySyntaxError,
    )
    from engine.evaluation.outcome import Column, Outcome, Relation
    from engine.language.classify import StatementClass, classify
    from engine.language.parser import StatementParser
    from engine.language.script import StatementSplitter, normalise_statement, split_statements
    from engine.language.secrets import redact_secrets
    from engine.session import Session
    from engine.storage.accounts import (
        Identity,
        ensure_first_admin,
        rights_generation,
        verify_login,
    )
    from engine.storage.store import Store


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
