"""The routing class of statement text for the load balancer, parsing each statement shape once.

The balancer must know, exactly, whether a statement reads or writes and
which objects it names (a misrouted write is a correctness bug), but a full
parse costs tens of microseconds per request. Applications send the same
statements with other values, so the class is remembered per statement
*shape* (the text with its number and string literals taken out, as
engine.language.statement_cache defines it).

Why this is exact: a class is remembered for a shape only after
`StatementCache` has learnt that shape, i.e. proved that every literal of it
is a plain `Literal` node whose value does not change the tree around it.
For any later text of the shape, `StatementCache` would return that same
tree with other values in those `Literal` nodes, without parsing; and
neither `classify` nor `routed` looks inside a `Literal` (they read node
types, table, view and database names only). So the remembered class is what parsing and
classifying the new text would give. A text whose literal values the cache
would not take (a number too large to convert) is parsed as usual.

Texts without literals go through the parser's own exact-text LRU.

A read's class is also remembered by its exact text (`known_reads`): the
class is a pure function of the text, and a read is sent again and again
(the proxy cache answers it until a write or its TTL drops it, then the
same text reaches the balancer); looking it up skips the shape scan, which
costs a few microseconds a literal. Writes are not remembered: each insert
brings its own values, and they would push the reads out.

Besides engine.language.classify's class (where a CREATE of a table or domain also
names the domains it copies, so the balancer runs it where the session's own
CREATE of those domains already is), a write says what the object it writes
is afterwards (`target`): a table, a view, a domain, or dropped. The
balancer's read-your-writes check uses it to know which names read are
plain tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.language import ast
from engine.language.classify import StatementClass, classify
from engine.language.parser import StatementParser

# shape_key keys exactly as the statement cache does (`shape_key_of`, for the
# usual texts in fewer steps), so "same shape" means what the cache proved
# things about.
from engine.language.statement_cache import StatementCache
from engine.lru import LRUCache
from nodes.balancer.shape_keys import shape_key

DEFAULT_MAX_SHAPES = 1024
# Read texts whose class is remembered; forgotten all at once when full.
MAX_KNOWN_READS = 4096
TABLE, VIEW, DOMAIN, DROPPED = "table", "view", "domain", "dropped"


@dataclass(frozen=True)
class Routed:
    """What the balancer needs to know about one statement."""

    kind: str                      # 'read', 'write', 'use' or 'database' (engine.language.classify)
    database: str | None           # named by 'use' / 'database' statements
    objects: tuple[str, ...]       # written object first; for reads, what is read
    target: str | None = None      # a write's object afterwards: TABLE, VIEW, DOMAIN or DROPPED
    drops_database: bool = False


def routed(statement: ast.Statement) -> Routed:
    """The routing facts of a parsed statement."""
    statement_class: StatementClass = classify(statement)
    target = None
    if isinstance(statement, (ast.Insert, ast.Update, ast.Delete, ast.CreateTable)):
        target = TABLE
    elif isinstance(statement, ast.CreateView):
        target = VIEW
    elif isinstance(statement, ast.CreateDomain):
        target = DOMAIN
    elif isinstance(statement, ast.Drop):
        target = DROPPED
    return Routed(statement_class.kind, statement_class.database, statement_class.objects,
                  target, isinstance(statement, ast.Drop) and statement_class.kind == "database")


class StatementClassifier:
    """`classify_text(text)` -> Routed, or None for an empty statement.

    Raises TahiryError (syntax) exactly when parsing would. One instance per
    event loop: not thread-safe.
    """

    def __init__(self, parser: StatementParser | None = None,
                 max_shapes: int = DEFAULT_MAX_SHAPES):
        self.parser = parser if parser is not None else StatementParser()
        self.statements = StatementCache(max_shapes)
        self.max_shapes = max_shapes
        self._by_shape: LRUCache[str, Routed] = LRUCache(max_shapes)
        self.shape_hits = 0
        self.known_reads: dict[str, Routed] = {}

    def classify_text(self, text: str) -> Routed | None:
        known = self.known_reads.get(text)
        if known is not None:
            return known
        key = shape_key(text)
        if key is not None:
            known = self._by_shape.get(key)
            if known is not None:
                self.shape_hits += 1
                if known.kind == "read":
                    self._remember_read(text, known)
                return known
        hits_before = self.statements.hits
        statement = self.statements.parse(self.parser, text)
        if statement is None:
            return None
        facts = routed(statement)
        if key is not None and self.statements.hits != hits_before:
            # The cache answered from a learnt shape: see the module docstring.
            self._by_shape.put(key, facts)
        if facts.kind == "read":
            self._remember_read(text, facts)
        return facts

    def _remember_read(self, text: str, facts: Routed) -> None:
        if len(self.known_reads) >= MAX_KNOWN_READS:
            self.known_reads.clear()
        self.known_reads[text] = facts
