"""Parse once per statement shape: a cache of parsed statements keyed by text with the literals taken out.

Applications send the same statements with different values
(`alaivo * ao@ t rehefa id = 41`, `... id = 42`). The parser's own LRU is
keyed by the exact text, so each of those costs a full SLY parse (~70 us).
Here the text is scanned for number and string literals (one regular
expression, a few microseconds); the text with each literal replaced by a
marker of its kind is the statement's *shape*. The second time a shape is
seen, it is learnt:

1. the real text is parsed normally (its AST is what the caller gets);
2. a probe text -- the same shape with a unique sentinel value in every
   literal -- is parsed too, and every sentinel must turn up exactly once,
   as the value of a `Literal` node;
3. putting the real values back into the probe's tree at those places must
   give exactly the real tree (compared by `repr`, so 1 and 1.0 differ).

Only then later texts of that shape are answered by copying the probe's tree
with their own values at those places, without parsing. Any shape where a
literal is not a plain `Literal` (a `fetra` bound, a domain bound, a select
item whose source text names a column, a folded `-5`, ...) fails the check
and is simply parsed every time. Values are converted exactly as the lexer
does; anything unusual (a number too large to convert) goes to the parser.
Only data statements (queries, insert, update, delete) are cached.

`lookup(text)` answers a learnt shape and the text's values without
building the tree: the evaluator keeps, on the shape (`plans`), what it
compiled from the probe (engine/evaluation/query.py's `QueryPlan`), and runs
it with the values; `shape.build(values)` is the tree when it cannot.

One instance per session, like the parser: not thread-safe.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Literal, cast

from engine.language import ast
from engine.language.lexer import MAX_NUMBER, decode_string
from engine.lru import LRUCache

DEFAULT_SHAPES = 256
MAX_SHAPE_CHARS = 4096
CACHED_KINDS = (ast.Query, ast.Insert, ast.Update, ast.Delete)

# Comments, strings and words are matched so that digits and quotes inside
# them are never taken for literals; the same patterns as engine.language.lexer.
# Each match is one literal or comment (a lone quote that opens no string is
# passed over) after a run of everything else, words included, taken in the
# same match: the loop below runs once per literal, not once per word. The
# run stops only where a literal, a comment or a quote may start (an ASCII
# digit not inside a word, `--`, `//`, a quote), so it never hides one; each
# match starts where the previous one ended (never inside a word).
_SKIP = r"""(?>(?:[^\W\d]\w*+|[^\w'"\-/]++|-(?!-)|/(?!/)|(?![0-9])\w)*+)"""
_SCAN = re.compile(
    _SKIP
    + r"""(?:(?P<comment>(?:--|//)[^\n]*)"""
    r"""|(?P<string>'[^'\\]*+(?:(?:''|\\.)[^'\\]*+)*+'|"[^"\\]*+(?:(?:""|\\.)[^"\\]*+)*+")"""
    r"""|(?P<lone>['"])"""
    r"""|(?P<number>[0-9]+(?:\.[0-9]+)?))""", re.DOTALL)

_INT_SENTINEL = 7_300_000_000_000_001
_FLOAT_SENTINEL = 7_300_000_001.5
_STRING_SENTINEL = "\u2042sentinel{}\u2042"


class _NotCacheable(Exception):
    """This text must go to the parser."""


@dataclasses.dataclass
class Shape:
    """A learnt shape: builds the statement's tree from its literal values.

    `build(values)` makes a fresh copy of the probe's tree along the paths
    that lead to literals (everything else is shared with the probe: the
    tree is immutable) with the values in place of the sentinels.
    `probe` is that tree with the sentinels, `params` the sentinels' places
    in the values (`(type, value) -> index`); `plans` is the caller's: what
    it derived from the probe (the shape is forgotten with it).
    """

    build: Callable[[list], ast.Statement]
    probe: ast.Statement
    params: dict[tuple[type, object], int]
    plans: dict = dataclasses.field(default_factory=dict)


class StatementCache:
    """Parsed statements by shape; `parse(parser, text, line, column)`."""

    def __init__(self, max_shapes: int = DEFAULT_SHAPES):
        self.max_shapes = max_shapes
        self._shapes: LRUCache[str, Shape | None] = LRUCache(max_shapes)  # None: not cacheable
        self._seen_once: LRUCache[str, None] = LRUCache(max_shapes)
        self.hits = 0
        # The last text found and its (shape, values): a server looks a
        # statement up on its event loop (is it a small read?) and, when it
        # is not, again on its engine thread; the second time is free.
        self._last_found: tuple[str, Shape, list] | None = None

    def lookup(self, text: str) -> tuple[Shape, list] | None:
        """(learnt shape, the text's literal values), or None: then `parse` the text.

        `shape.build(values)` is exactly what `parse` would return for `text`.
        """
        last = self._last_found
        if last is not None and last[0] == text:
            self.hits += 1
            return last[1], list(last[2])
        if len(text) > MAX_SHAPE_CHARS:
            return None
        try:
            shape_key, pieces = _shape_of(text)
            if not pieces:
                return None
            shape = self._shapes.get(shape_key)
            if shape is None:  # not learnt (yet), or not cacheable
                return None
            values = [_value(kind, source) for kind, source in pieces]
        except _NotCacheable:
            return None
        self.hits += 1
        self._last_found = (text, shape, values)
        return shape, list(values)

    def parse(self, parser, text: str, line: int = 1, column: int = 1):
        if len(text) > MAX_SHAPE_CHARS:
            return parser.parse(text, line, column)
        try:
            shape_key, pieces = _shape_of(text)
        except _NotCacheable:
            return parser.parse(text, line, column)
        if not pieces:  # no literal: the parser's exact-text cache does it
            return parser.parse(text, line, column)
        shapes = self._shapes
        shape: Shape | None | Literal[False] = shapes.get(shape_key, False)  # False: not learnt
        if shape is not False:
            if shape is None:
                return parser.parse(text, line, column)
            try:
                values = [_value(kind, source) for kind, source in pieces]
            except _NotCacheable:
                return parser.parse(text, line, column)
            self.hits += 1
            return shape.build(values)
        statement = parser.parse(text, line, column)  # raises on bad syntax: nothing learnt
        if shape_key in self._seen_once:
            self._seen_once.pop(shape_key)
            shapes.put(shape_key, _learn(parser, statement, shape_key, pieces))
        else:
            self._seen_once.put(shape_key, None)
        return statement


def shape_key_of(text: str) -> str | None:
    """The shape `text` would be answered by, or None when it must be parsed.

    None for long texts, texts without literals (the parser's exact-text
    cache serves those) and literals the lexer would not convert the simple
    way. Callers that remember facts per shape (the balancer's routing
    classes) use this so that they key exactly as this cache does.
    """
    if len(text) > MAX_SHAPE_CHARS:
        return None
    try:
        shape_key, pieces = _shape_of(text)
        if not pieces:
            return None
        for kind, source in pieces:
            _value(kind, source)
    except _NotCacheable:
        return None
    return shape_key


def _shape_of(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(text with literals replaced by markers, [(kind, source text)] of each literal)."""
    parts: list[str] = []
    pieces: list[tuple[str, str]] = []
    position = 0
    scan = _SCAN.match
    match = scan(text)
    # Matches follow each other: the first one that fails means no literal is left.
    while match is not None:
        kind = match.lastgroup
        if kind == "comment" or kind == "lone":
            match = scan(text, match.end())
            continue
        assert kind is not None  # one of the groups always matches
        source = match.group(kind)
        start = match.start(kind)
        if kind == "number":
            kind = "float" if "." in source else "int"
        else:
            kind = "string" + source[0]  # the quote decides how the body decodes
        if "\0" in source:
            raise _NotCacheable()
        parts.append(text[position:start])
        parts.append(f"\0{kind}\0")
        pieces.append((kind, source))
        position = match.end()
        match = scan(text, position)
    if "\0" in text:
        raise _NotCacheable()
    parts.append(text[position:])
    return "".join(parts), pieces


def _value(kind: str, source: str) -> object:
    """A literal's value, exactly as engine.language.lexer makes it."""
    value: int | float
    if kind == "int":
        try:
            value = int(source)
        except ValueError:  # beyond Python's digit limit: the lexer's error
            raise _NotCacheable() from None
    elif kind == "float":
        value = float(source)
    else:
        return decode_string(source[1:-1], source[0])
    if value > MAX_NUMBER:  # the lexer refuses it
        raise _NotCacheable()
    return value


def _sentinel(kind: str, index: int) -> tuple[object, str]:
    """(value, source text) of the index-th literal of a probe."""
    if kind == "int":
        number = _INT_SENTINEL + index
        return number, str(number)
    if kind == "float":
        decimal = _FLOAT_SENTINEL + index
        return decimal, repr(decimal)
    quote = kind[-1]
    text = _STRING_SENTINEL.format(index)
    return text, f"{quote}{text}{quote}"


def _learn(parser, statement, shape_key: str, pieces: list[tuple[str, str]]) -> Shape | None:
    """The shape of `statement`'s text if it passes every check, else None."""
    if not isinstance(statement, CACHED_KINDS):
        return None
    sentinels = []
    probe_parts = shape_key.split("\0")
    # split gives [text, kind, text, kind, ..., text]: replace every kind.
    for index in range(1, len(probe_parts), 2):
        value, source = _sentinel(probe_parts[index], index // 2)
        sentinels.append(value)
        probe_parts[index] = source
    try:
        probe = parser.parse("".join(probe_parts))
    except Exception:
        return None
    if type(probe) is not type(statement):
        return None
    found: dict[int, int] = {}   # sentinel index -> times seen
    on_path: set[int] = set()
    by_value = {(type(value), value): index for index, value in enumerate(sentinels)}

    def visit(node) -> bool:
        holds = False
        if type(node) is ast.Literal:
            index = by_value.get((type(node.value), node.value))
            if index is not None:
                found[index] = found.get(index, 0) + 1
                holds = True
        else:
            for part in ast.children(node):
                holds = visit(part) or holds
        if holds:
            on_path.add(id(node))
        return holds

    visit(probe)
    if len(found) != len(sentinels) or any(count != 1 for count in found.values()):
        return None
    # A copy of the probe, itself a statement of `statement`'s type, is a statement.
    shape = Shape(cast(Callable[[list], ast.Statement], _builder(probe, by_value, on_path)),
                  probe, by_value)
    values = [_value(kind, source) for kind, source in pieces]
    if repr(shape.build(values)) != repr(statement):
        return None
    return shape


def _builder(node, slots: dict[tuple[type, object], int], on_path: set[int]) -> Callable[[list], object]:
    """A function values -> a copy of `node` with the values in place of the sentinels.

    Made once per shape, so that filling a statement in costs no walk over
    dataclass fields: each node on a path to a literal becomes a closure that
    creates its copy directly (its other fields shared with the probe).
    """
    if id(node) not in on_path:
        return lambda values: node
    if type(node) is ast.Literal:
        slot = slots[(type(node.value), node.value)]
        literal = ast.Literal
        return lambda values: literal(values[slot])
    if isinstance(node, (tuple, list)):
        items = [_builder(item, slots, on_path) for item in node]
        if isinstance(node, tuple):
            return lambda values: tuple([item(values) for item in items])
        return lambda values: [item(values) for item in items]
    cls = type(node)
    fields = dict(node.__dict__)  # frozen dataclasses without slots: a plain __dict__
    children = [(name, _builder(value, slots, on_path)) for name, value in fields.items()
                if id(value) in on_path]
    new = object.__new__

    def build(values):
        fresh = new(cls)
        state = fresh.__dict__
        state.update(fields)
        for name, child in children:
            state[name] = child(values)
        return fresh

    return build
