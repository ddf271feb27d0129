"""Compiled code of generated expression lambdas, kept by source text.

engine/evaluation/expressions.py turns every expression into the source of one Python
lambda. Literal values never appear in that source (they are names in the
lambda's namespace), so the statements an application repeats with other
values produce the very same source text, and compiling it again with
`eval` (~30 us) is wasted work. A `CodeCache` keeps the code objects of the
most recently used sources (a bounded LRU); binding one to a namespace is a
cheap `eval` of the ready code object.

One cache may be shared by the sessions of a server: its few steps run
under a lock, so threads may use it at the same time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import CodeType

from engine.lru import LRUCache

DEFAULT_CODE_ENTRIES = 1024


class CodeCache:
    """Code objects by source text, at most `max_entries` of them (least recently used go)."""

    def __init__(self, max_entries: int = DEFAULT_CODE_ENTRIES):
        self.max_entries = max(1, max_entries)
        self._codes: LRUCache[str, CodeType] = LRUCache(self.max_entries)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._codes)

    def code(self, source: str) -> CodeType:
        """The compiled code of the expression `source` (an `eval`-mode compile)."""
        with self._lock:
            code = self._codes.get(source)
            if code is not None:
                self.hits += 1
                return code
        # Compiled outside the lock: two threads may both compile a new
        # source once; either result is the same code.
        code = compile(source, "<expression>", "eval")
        with self._lock:
            self.misses += 1
            self._codes.put(source, code)
        return code

    def function(self, source: str, namespace: dict) -> Callable:
        """Evaluate the expression `source` (a lambda) with `namespace` as its globals."""
        return eval(self.code(source), namespace)  # noqa: S307 - generated source only
