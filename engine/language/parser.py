"""The SLY parser: one statement's text -> an `engine.language.ast` node.

`StatementParser` is the public entry point (one instance per connection:
SLY parser objects are not safe to share between threads). It keeps an LRU
cache of parsed statements keyed by their text, and turns every syntax
problem into a `TahirySyntaxError` whose line and column are positions in
the whole script (the caller says where the statement text starts).

The grammar follows LANGUAGE.md sections 2, 3 and 4b. Operator precedence
is a SLY precedence table (loosest first: na, ary, !, comparisons, dia [tsy]
null, + -, * /, unary -); comparisons are non-associative, so `1 < 2 < 3`
is a syntax error. A `-` applied to a number literal is folded into a
negative `Literal` (`-5` is `Literal(-5)`, `-a` is `Unary('-', a)`).

Structural checks that need no catalog are made here and reported as
syntax errors with a position: domain atom arity and bound types, empty
`TANISA()`, a derived table without alias, an outer join without `ka`, a
natural join with `ka`, `fetra` with a non-integer, and nesting deeper than
the evaluator could handle (`MAX_EXPRESSION_DEPTH`, lexer `MAX_PAREN_DEPTH`).
"""

from __future__ import annotations

import re
from itertools import chain

from sly import Parser

from engine.errors import TahirySyntaxError
from engine.language import ast
from engine.language.account_syntax import (
    KEYWORD_OPENERS,
    PASSWORD_UNQUOTED,
    names_accounts,
    opener_word,
    parse_account,
)
from engine.language.english import SQL_OPERATORS, SQL_TYPES, WRITTEN_OTHERWISE
from engine.language.hints import constraint_hint, name_hint, syntax_hint
from engine.language.lexer import KEYWORDS, SyntaxProblem, TahiryLexer
from engine.language.literal_rows import parse_literal_insert
from engine.language.messages import text
from engine.language.parse_loop import run as run_parser
from engine.language.script import normalise_statement
from engine.language.secrets import in_password, mentions_secret
from engine.lru import LRUCache
from engine.vocabulary import WORD_OBJECT_KINDS

DEFAULT_CACHE_SIZE = 512
_NOT_CACHED = object()  # tells a cached None (an empty statement) from a miss
# Longer statements (bulk inserts) are rarely repeated: caching them would
# only pin memory.
MAX_CACHED_CHARS = 8192
# Deeper expression trees are refused: evaluating them would exhaust the stack.
MAX_EXPRESSION_DEPTH = 200
# An error lists what was expected only when that list is short enough to help.
MAX_EXPECTED_SHOWN = 6
MAX_KEYWORDS_SHOWN = 12

# `asehoy ny tsanganana [ao@ T]` (LANGUAGE.md 2, "Describe").
DESCRIBE_WORD = "tsanganana"

# How a query compares a row with an aggregate of its table, without a subquery in an
# expression (the hint `hint_subquery`; it runs as written).
SUBQUERY_EXAMPLE = ("alaivo n.id ao@ naoty n tonona (alaivo avg(naoty) antso m ao@ naoty) x "
                    "ka n.naoty > x.m")

DERIVED_TABLE_ALIAS = "Tous les tables dérivé doit avoir leur propre alias"

_TOKEN_NAMES = {
    "ID": "anarana", "QUALID": "anarana", "NUMBER": "isa", "STRING": "lahatsoratra",
    "$end": "';'", "AO": "'ao@'", "JOIN": "'tonona'", "CMP": "'<'",
}
_PUNCTUATION = {"';'", "')'", "','"}
# Token kind -> its words: one kind may stand for several (SETOP: `ankambana`, `analana`,
# `atifitra`), each named where the kind is expected, and each a "did you mean" candidate.
_KEYWORD_TYPES: dict[str, tuple[str, ...]] = {}
for _word, _token_type in KEYWORDS.items():
    _KEYWORD_TYPES[_token_type] = (*_KEYWORD_TYPES.get(_token_type, ()), _word)
# The words a statement starts with: found where a `;` could end the one before, it was
# forgotten (`alaivo * ao@ t` then `alaivo 2` on the next line).
_STATEMENT_TYPES = {KEYWORDS[word] for word in (
    "alaivo", "manampia", "havaozy", "fafao", "manamboara", "ravao", "asehoy", "ampiasao",
    "omeo", "esory") if word in KEYWORDS}
# The words of a statement's clauses: one starting a statement was cut off the one before
# by a `;` too early (`alaivo * ao@ t; rehefa id = 1;`).
# The base types a domain is made of (a misspelled one, with bounds, is hinted).
BASE_TYPES = ("ISA", "LAHATSORATRA", "DATY", "TANISA")
# An `ao@` after the error, where a comma could come: the one before it was not forgotten
# (`alaivo id anarana taranja ao@ t` misses a comma).
_LATER_AO = re.compile(r"(?<![\w.])ao(?![\w.])", re.IGNORECASE)
# SQL written where a hint can say the Tahiry way: `DROP TABLE a, b` (the kind and the
# first name; the next name), `ORDER BY` / `GROUP BY`, and a name in quotes.
_DROP_HEAD = re.compile(r"ravao\s+ny\s+(tabilao|jery|efitra|tahiry)\s+([^\W\d]\w*)",
                        re.IGNORECASE)
_NEXT_NAME = re.compile(r",\s*([^\W\d]\w*)")
_BY_AFTER = re.compile(r"(?<![\w.])(alaharo|vondrona)\s+by\Z", re.IGNORECASE)
_NAME = re.compile(r"[^\W\d]\w*")
# A name or a value: what a list (of values, columns, definitions) is made of.
_OPERAND_TYPES = frozenset(("ID", "QUALID", "NUMBER", "STRING"))
_CLAUSE_TYPES = {KEYWORDS[word] for word in (
    "ao", "rehefa", "tonona", "ka", "vondrona", "alaharo", "fetra", "antso", "sanda", "ova",
    "ankambana", "miakatra", "midina")}

# A query's clauses in the order they are written (`tonona ... ka ...` among the joins), by
# the token that starts each; once read, a clause is its rule (empty when not written).
_CLAUSE_ORDER = ("JOIN", "REHEFA", "VONDRONA", "ALAHARO", "FETRA")
_CLAUSE_WORDS = {"JOIN": "tonona", "REHEFA": "rehefa", "VONDRONA": "vondrona",
                 "ALAHARO": "alaharo", "FETRA": "fetra"}
_CLAUSE_RULES = {"where_opt": "REHEFA", "group_opt": "VONDRONA", "order_opt": "ALAHARO",
                 "limit_opt": "FETRA"}


def syntax_error(detail: str, text: str, index: int, line: int, column: int,
                 hint: str = "") -> TahirySyntaxError:
    """A `TahirySyntaxError` at `index` of `text`, which starts at (line, column).

    `hint`: a sentence to end it with (engine.language.hints), or "".
    """
    index = max(0, min(index, len(text)))
    newlines = text.count("\n", 0, index)
    if newlines:
        line += newlines
        column = index - text.rfind("\n", 0, index)
    else:
        column += index
    sentence = f"Diso ny fanoratana (syntax) amin'ny andalana {line}, tsanganana {column} : {detail}"
    return TahirySyntaxError(sentence + hint, line, column)


def collapse_whitespace(source: str) -> str:
    """Source text with whitespace runs collapsed (outside literals, comments dropped)."""
    if "'" in source or '"' in source or "--" in source or "//" in source:
        return normalise_statement(source)
    return " ".join(source.split())


def _shown(source: str, limit: int = 40) -> str:
    """A token's source as quoted in a one-line error message."""
    if len(source) > limit:
        source = source[:limit - 3] + "..."
    return source.replace("\r", "\\r").replace("\n", "\\n")


def _display_expected(token_type: str) -> tuple[str, ...]:
    """How an expected token kind is named in an error: all its words for a keyword kind."""
    if token_type in _TOKEN_NAMES:
        return (_TOKEN_NAMES[token_type],)
    if token_type in _KEYWORD_TYPES:
        return tuple(f"'{word}'" for word in _KEYWORD_TYPES[token_type])
    return (f"'{token_type}'",)


class _Grammar(Parser):
    tokens = TahiryLexer.tokens
    # Loosest first (LANGUAGE.md 2). Comparisons are non-associative, so
    # `1 < 2 < 3` is a syntax error; `dia [tsy] null` is a postfix operator.
    precedence = (
        ("left", NA),  # noqa: F821 (SLY injects the names)
        ("left", ARY),  # noqa: F821
        ("right", "!"),
        ("nonassoc", CMP, "="),  # noqa: F821
        ("left", DIA),  # noqa: F821
        ("left", "+", "-"),
        ("left", "*", "/"),
        ("right", UMINUS),  # noqa: F821
    )

    def __init__(self):
        self.text = ""
        self.depths: dict[int, int] = {}
        self._line_positions = {}
        self._index_positions = {}
        self.states_before_lookahead: list[int] | None = None   # set by the lean driver

    # ---------------------------------------------------------------- helpers

    def _source(self, symbol) -> str:
        return self.text[symbol.index:symbol.end]

    def _query_text(self, start: int) -> str:
        """The source of the query from `start` to its last token.

        SLY's span of a rule ending in an empty production runs to the end
        of the text, so the end is found by lexing the tail again.
        """
        tail = self.text[start:]
        end = 0
        for token in TahiryLexer().tokenize(tail):
            if token.type != ";":
                end = token.end
        return tail[:end]

    def _node(self, node, *children):
        """Record `node`'s depth; refuse trees deeper than the limit."""
        depths = self.depths
        depth = 1
        for child in children:
            child_depth = depths.get(id(child), 1)
            if child_depth > depth:
                depth = child_depth
        depth += 1
        if depth > MAX_EXPRESSION_DEPTH:
            raise SyntaxProblem(
                f"lalina loatra ny fanehoana (mihoatra ny {MAX_EXPRESSION_DEPTH} ambaratonga)",
                self._current_index())
        depths[id(node)] = depth
        return node

    def _current_index(self) -> int:
        for symbol in reversed(self.symstack):
            index = getattr(symbol, "index", None)
            if index is not None:
                return index
        return 0

    def _states_at_error(self) -> list[int]:
        """The state stack from before the refused token's reductions (the lean driver's,
        engine/language/parse_loop.py); after them under SLY's own `parse`."""
        return self.states_before_lookahead or self.statestack

    def _can_shift_next(self, terminal: str) -> bool:
        """Whether `terminal` could have come instead of the token refused, by running the
        LALR tables on a copy of the state stack (before the reductions that token
        made) until it is shifted or refused.

        A state's action table alone over-promises: LALR merges states, so a
        state shared by two contexts accepts what either allows (`')'` with no
        parenthesis open, `ka` after `ao@ t x` because `tonona u x ka` allows
        it), and only the reductions that follow would refuse it. LALR never
        shifts a token the grammar refuses, so "shifted" is exact.
        """
        lrtable = self._lrtable
        productions = self._grammar.Productions
        stack = list(self._states_at_error())
        while True:
            action = lrtable.lr_action[stack[-1]].get(terminal)
            if action is None:
                return False
            if action >= 0:   # a shift, or the accept of `$end`
                return True
            production = productions[-action]
            if production.len:
                del stack[-production.len:]
            stack.append(lrtable.lr_goto[stack[-1]][production.name])

    def error(self, token):
        actions = [t for t in self._lrtable.lr_action[self._states_at_error()[-1]]
                   if self._can_shift_next(t)]
        expected = sorted({shown for t in actions for shown in _display_expected(t)})
        keywords = frozenset(word for t in actions for word in _KEYWORD_TYPES.get(t, ()))
        reserved = ""   # a reserved word found where a name was expected
        if token is None:
            index = len(self.text)
            for symbol in reversed(self.symstack):
                end = getattr(symbol, "end", None)
                if end is not None:
                    index = end
                    break
            found = "fa tapitra ny fanambarana"
        else:
            index = token.index
            shown = _shown(self.text[token.index:token.end])
            if token.type == "STRING" and mentions_secret(self.text):
                shown = '"***"'   # maybe a password (engine.language.secrets)
            found = f"fa '{shown}' no hita"
            if (token.type == "ALAIVO" and "anarana" in expected and self.symstack
                    and self.symstack[-1].type == "(") or (
                    token.type == "SETOP" and shown in ("+", "-")
                    and "'ankambana'" not in expected):  # (no set operator may stand there)
                # SQL's scalar subquery (`rehefa a > (alaivo avg(a) ...)`): not a name;
                # `a + (alaivo ...)` lexes as a set operator where none may stand
                # (`+`, `-` only: `^` is never arithmetic).
                raise SyntaxProblem(self._expected_detail(expected, found) or found, token.index,
                                    hint=text("hint_subquery", example=SUBQUERY_EXAMPLE))
            if token.type == "TSY" and ("'null'" in expected or "'dia'" in expected):
                # Malagasy "not" written as NOT (`rehefa tsy a = 1`): `!` is NOT.
                raise SyntaxProblem(self._expected_detail(expected, found) or found,
                                    token.index, hint=text("hint_tsy"))
            if token.type in _KEYWORD_TYPES and "anarana" in expected \
                    and not self._forgot_semicolon(token, expected):
                found += f" ('{shown}' dia teny voatokana, tsy azo atao anarana)"
                reserved = shown
        stack = self.symstack
        if (token is not None and token.type in ("CMP", "=") and len(stack) >= 3
                and stack[-1].type == "expr" and stack[-2].type in ("CMP", "=")
                and stack[-3].type == "expr"):
            raise SyntaxProblem(
                "tsy azo atohy ny fampitahana (ohatra '1 < 2 < 3'): ampiasao 'ary'", index)
        if token is not None and (token.type == ";" or self.symstack[-1].type in (";", "start")):
            raise SyntaxProblem("fanambarana iray ihany no azo atao eto", index)
        detail = self._expected_detail(expected, found)
        if detail is None:
            detail = "tapitra tampoka ny fanambarana" if token is None \
                else f"tsy nandrasana '{shown}' teto"
        later = self._later_clause(token)
        if later == "VONDRONA" and token is not None and token.type == "REHEFA":
            # HAVING written as a `rehefa` after `vondrona`.
            raise SyntaxProblem(detail, index, hint=text("hint_group_filter",
                                                         example=WRITTEN_OTHERWISE["having"]))
        if later is not None:
            # `alaharo a rehefa ...`, `fetra 1 alaharo a`: a clause after one it goes before.
            raise SyntaxProblem(detail, index, hint=text(
                "hint_clause_order", word=shown, later=_CLAUSE_WORDS[later]))
        if token is not None and token.type in ("CMP", "=") and index > 0 \
                and self.text[index - 1:index + 1] in SQL_OPERATORS:
            # SQL's `<>`, C's `==`: lexed as two operators, the second one unexpected.
            written = self.text[index - 1:index + 1]
            raise SyntaxProblem(detail, index, hint=text(
                "hint_english_keyword", keyword=SQL_OPERATORS[written], word=written))
        if token is not None and token.type == "," and "'tonona'" in expected:
            # SQL's `FROM a, b`: a comma where a join could stand.
            raise SyntaxProblem(detail, index, hint=text("hint_comma_join"))
        if token is not None and self._forgot_semicolon(token, expected):
            raise SyntaxProblem(detail, index, hint=text("hint_missing_semicolon", word=shown))
        if token is not None and token.type in _CLAUSE_TYPES and not self.text[:index].strip():
            # A clause word starting a statement (`alaivo * ao@ t; rehefa id = 1;`): the `;`
            # before it ended the statement it belongs to.
            raise SyntaxProblem(detail, index, hint=text(
                "hint_clause_after_semicolon", word="ao@" if token.type == "AO" else shown))
        head = self.text[:index].rstrip()
        first = head.split(None, 1)[0].lower() if head else ""
        # A misspelt keyword's hint (added where the error is reported) wins over the guesses below.
        misspelt = syntax_hint(self.text, index, keywords)
        if token is not None and token.type == "," and len(stack) >= 2 \
                and stack[-1].type == "NUMBER" and stack[-2].type == "FETRA":
            # MySQL's `LIMIT 1, 2`.
            raise SyntaxProblem(detail, index, hint=text("hint_limit_comma"))
        dropped = _DROP_HEAD.fullmatch(head)
        after = _NEXT_NAME.match(self.text, index)
        if token is not None and token.type == "," and dropped and after:
            # SQL's `DROP TABLE a, b`: one object a statement.
            kind = dropped.group(1).lower()
            raise SyntaxProblem(detail, index, hint=text(
                "hint_drop_one", statements=f"ravao ny {kind} {dropped.group(2)}; "
                                            f"ravao ny {kind} {after.group(1)};"))
        by = _BY_AFTER.search(head)
        if token is not None and token.type in ("ID", "QUALID") and by is not None:
            # SQL's `ORDER BY`, `GROUP BY` with the Tahiry word: `by` read as a column.
            keyword = by.group(1).lower()
            raise SyntaxProblem(detail, index, hint=text("hint_no_by", keyword=keyword,
                                                         name=shown))
        if token is not None and token.type == "AO" and head.lower() == "havaozy":
            # `havaozy ao@ t ...`, as `manampia ao@` and `fafao ao@` are written.
            raise SyntaxProblem(detail, index, hint=text("hint_update_no_ao"))
        if token is not None and head.lower().split(None, 2)[:2] in (
                ["manamboara", "tabilao"], ["manamboara", "efitra"]):
            constraint = constraint_hint(self.text, index)
            if constraint:   # `(id ISA(0,10) not null)`: SQL's constraints, Tahiry has none
                raise SyntaxProblem(detail, index, hint=constraint)
        if reserved and (first == "manamboara" or head.lower().endswith("antso")) \
                and not misspelt:
            # `manamboara tabilao vondrona (...)`, `antso fetra`: a name being given, that
            # is a reserved word; one to write instead.
            raise SyntaxProblem(detail, index, hint=text("hint_reserved_name",
                                                         instead=f"{reserved}_1"))
        if token is not None and token.type in _CLAUSE_TYPES and head.endswith(","):
            # `alaivo a, ao@ t`: a comma left before the clause word.
            raise SyntaxProblem(detail, index, hint=text(
                "hint_comma_before", word="ao@" if token.type == "AO" else shown))
        if (token is None or token.type == ")") and head.endswith(","):
            # `sanda (1, 2,)`, `alaivo a, b,;`: a comma left at the end of a list.
            raise SyntaxProblem(detail, index, hint=text(
                "hint_comma_before", word=";" if token is None else ")"))
        if token is not None and token.type == "ID" and "'ao@'" in expected \
                and not ("','" in expected and _LATER_AO.search(self.text, token.end)) \
                and not misspelt:
            # `alaivo * mpianatra`, `fafao mpianatra`: a name where `ao@` could come, no
            # keyword misspelt.
            example = f"{first} ao@ {shown}" if first in ("manampia", "fafao") \
                else f"alaivo ... ao@ {shown}"
            raise SyntaxProblem(detail, index, hint=text("hint_forgot_ao", word=shown,
                                                         example=example))
        if token is not None and token.type in _OPERAND_TYPES and "'null'" in expected \
                and set(expected) <= {"'null'", "'tsy'"} \
                and not misspelt:
            # `rehefa anarana dia 'Alice'`: `dia` ("is") read as equality (`dia not null`
            # keeps the English word's hint).
            raise SyntaxProblem(detail, index, hint=text("hint_dia_value"))
        if token is not None and token.type in ("CMP", "=") and self.symstack \
                and self.symstack[-1].type in ("ARY", "NA"):
            # `naoty > 10 ary < 15`: the column of the second comparison left out.
            raise SyntaxProblem(detail, index, hint=text("hint_repeat_operand",
                                                         example="a > 10 ary a < 15"))
        if token is not None and token.type == "ID" and "lahatsoratra" in expected \
                and "anarana" not in expected:
            # `TANISA(L3, M1)`: a name where only a literal may stand, a text's quotes
            # forgotten.
            raise SyntaxProblem(detail, index, hint=text("hint_quoted_text", word=shown))
        if token is not None and "','" in expected and (
                token.type in _OPERAND_TYPES or (token.type == "(" and head.endswith(")"))) \
                and not misspelt:
            # `sanda (1 'Algo')`, `(a ISA(0,10) b ...)`, `alaivo id anarana taranja`, `sanda
            # (1) (2)`: two operands, definitions or rows where a list goes on, the comma
            # between them forgotten.
            raise SyntaxProblem(detail, index, hint=text("hint_missing_comma", word=shown))
        if token is not None and token.type == "STRING" and "anarana" in expected \
                and not {"isa", "lahatsoratra"} & set(expected) and not mentions_secret(self.text) \
                and _NAME.fullmatch(token.value) and token.value.lower() not in KEYWORDS \
                and not misspelt:
            # `antso "isa"`, `manamboara tahiry 'sekoly2'`: a name between quotes.
            raise SyntaxProblem(detail, index, hint=text("hint_unquoted_name", name=token.value))
        raise SyntaxProblem(detail, index, keywords)

    def _later_clause(self, token) -> str | None:
        """The first clause of the query being read, written before `token`'s, that goes
        after it (`alaharo a rehefa ...`: `ALAHARO`), or None."""
        if token is None or token.type not in _CLAUSE_ORDER:
            return None
        rank = _CLAUSE_ORDER.index(token.type)
        later = None
        for symbol in reversed(self.symstack):
            if symbol.type == "ALAIVO":   # the query being read starts there
                break
            clause = symbol.type if symbol.type in _CLAUSE_ORDER \
                else _CLAUSE_RULES.get(symbol.type)
            if clause is None or (clause != symbol.type and symbol.value in (None, ())):
                continue   # not a clause, or an empty one
            if _CLAUSE_ORDER.index(clause) > rank:
                later = clause   # (read backwards: the first one written comes last)
        return later

    @staticmethod
    def _forgot_semicolon(token, expected: list[str]) -> bool:
        """A statement's first word where a `;` could end the statement before it."""
        return token.type in _STATEMENT_TYPES and "';'" in expected

    @staticmethod
    def _expected_detail(expected: list[str], found: str) -> str | None:
        """`nandrasana A, B na ';' fa ... no hita`, or None when the list is too long to help."""
        if len(expected) > MAX_EXPECTED_SHOWN:
            # Long lists are mostly operators: the clause words say more (`ao@` is one).
            words = [e for e in expected
                     if e.strip("'").removesuffix("@").isalpha() or e in _PUNCTUATION]
            if len(words) <= MAX_KEYWORDS_SHOWN:
                expected = words
        if ";" in "".join(expected):
            expected = [e for e in expected if e != "';'"] + ["';'"]
        if not 0 < len(expected) <= MAX_KEYWORDS_SHOWN:
            return None
        listed = expected[0] if len(expected) == 1 else (
            ", ".join(expected[:-1]) + " na " + expected[-1])
        return f"nandrasana {listed} {found}"

    # ---------------------------------------------------------------- statements

    @_("statement", "statement ';'")
    def start(self, p):
        return p[0]

    @_("select_expr")
    def statement(self, p):
        return ast.Query(p.select_expr)

    @_("AMPIASAO ID")
    def statement(self, p):
        return ast.Use(p.ID)

    @_("ASEHOY NY object_kind")
    def statement(self, p):
        return ast.Show(p.object_kind)

    # `tsanganana` is not reserved (it names columns in old scripts): a plain
    # name here, like the type words where a domain is expected.
    @_("ASEHOY NY ID")
    def statement(self, p):
        self._describe_word(p._slice[2])
        return ast.Describe()

    @_("ASEHOY NY ID AO at_opt ID")
    def statement(self, p):
        self._describe_word(p._slice[2])
        return ast.Describe(p.ID1)

    def _describe_word(self, token) -> None:
        if token.value.lower() != DESCRIBE_WORD:
            raise SyntaxProblem(
                "nandrasana 'efitra', 'jery', 'tabilao', 'tahiry' na 'tsanganana' "
                f"fa '{_shown(token.value)}' no hita", token.index,
                frozenset({"efitra", "jery", "tabilao", "tahiry", DESCRIBE_WORD}))

    @_("TAHIRY", "TABILAO", "EFITRA", "JERY")
    def object_kind(self, p):
        return WORD_OBJECT_KINDS[p[0].lower()]

    @_("MANAMBOARA TAHIRY ID")
    def statement(self, p):
        return ast.CreateDatabase(p.ID)

    @_("MANAMBOARA TABILAO ID '(' column_defs ')'")
    def statement(self, p):
        return ast.CreateTable(p.ID, tuple(p.column_defs))

    @_("column_def")
    def column_defs(self, p):
        return [p.column_def]

    @_("column_defs ',' column_def")
    def column_defs(self, p):
        p.column_defs.append(p.column_def)
        return p.column_defs

    @_("ID domain")
    def column_def(self, p):
        return ast.ColumnDef(p.ID, p.domain)

    @_("MANAMBOARA EFITRA ID '(' domain ')'")
    def statement(self, p):
        return ast.CreateDomain(p.ID, p.domain)

    @_("MANAMBOARA JERY ID '@' select_expr")
    def statement(self, p):
        return ast.CreateView(p.ID, p.select_expr, self._query_text(p._slice[4].index))

    @_("RAVAO NY object_kind ID")
    def statement(self, p):
        return ast.Drop(p.object_kind, p.ID)

    @_("MANAMPIA AO at_opt ID insert_body")
    def statement(self, p):
        return self._insert(p.ID, None, p.insert_body)

    @_("MANAMPIA AO at_opt ID '(' ')' insert_body")
    def statement(self, p):
        return self._insert(p.ID, None, p.insert_body)

    @_("MANAMPIA AO at_opt ID '(' names ')' insert_body")
    def statement(self, p):
        return self._insert(p.ID, tuple(p.names), p.insert_body)

    @staticmethod
    def _insert(table, columns, body):
        if isinstance(body, list):
            return ast.Insert(table, columns, rows=tuple(body))
        return ast.Insert(table, columns, query=body)

    @_("SANDA rows")
    def insert_body(self, p):
        return p.rows

    @_("select_expr")
    def insert_body(self, p):
        return p.select_expr

    @_("row")
    def rows(self, p):
        return [p.row]

    @_("rows ',' row")
    def rows(self, p):
        p.rows.append(p.row)
        return p.rows

    @_("'(' exprs ')'")
    def row(self, p):
        return tuple(p.exprs)

    @_("ID")
    def names(self, p):
        return [p.ID]

    @_("names ',' ID")
    def names(self, p):
        p.names.append(p.ID)
        return p.names

    @_("HAVAOZY ID OVA assignments where_opt")
    def statement(self, p):
        return ast.Update(p.ID, tuple(p.assignments), p.where_opt)

    @_("assignment")
    def assignments(self, p):
        return [p.assignment]

    @_("assignments ',' assignment")
    def assignments(self, p):
        p.assignments.append(p.assignment)
        return p.assignments

    @_("ID '=' expr")
    def assignment(self, p):
        return ast.Assignment(p.ID, p.expr)

    @_("FAFAO AO at_opt ID where_opt")
    def statement(self, p):
        return ast.Delete(p.ID, p.where_opt)

    @_("")
    def empty(self, p):
        return None

    @_("empty", "'@'")
    def at_opt(self, p):
        return None

    # ---------------------------------------------------------------- domains

    @_("atom")
    def domain(self, p):
        return ast.DomainSpec((p.atom,))

    @_("domain ':' atom")
    def domain(self, p):
        return ast.DomainSpec(p.domain.atoms + (p.atom,))

    @_("ID")
    def atom(self, p):
        return self._atom(p.ID, None, p._slice[0].index)

    @_("ID '(' ')'")
    def atom(self, p):
        return self._atom(p.ID, [], p._slice[0].index)

    @_("ID '(' domain_args ')'")
    def atom(self, p):
        return self._atom(p.ID, p.domain_args, p._slice[0].index)

    @_("domain_arg")
    def domain_args(self, p):
        return [p.domain_arg]

    @_("domain_args ',' domain_arg")
    def domain_args(self, p):
        p.domain_args.append(p.domain_arg)
        return p.domain_args

    @_("NUMBER", "STRING", "NULL")
    def domain_arg(self, p):
        return None if p._slice[0].type == "NULL" else p[0]

    @_("'-' NUMBER")
    def domain_arg(self, p):
        return -p.NUMBER

    def _atom(self, name: str, args: list | None, index: int):
        word = name.lower()
        if word == "isa":
            self._check_bounds(name, args, index, integers=False)
            return ast.NumberAtom(args[0], args[1])
        if word == "lahatsoratra":
            self._check_bounds(name, args, index, integers=True)
            return ast.TextAtom(args[0], args[1])
        if word == "daty":
            if args is not None:
                raise SyntaxProblem("ny DATY dia tsy manana fari-pahalehibeazana", index)
            return ast.DateAtom()
        if word == "tanisa":
            if not args:
                raise SyntaxProblem("ny TANISA dia mila sanda iray farafahakeliny", index)
            if any(arg is None for arg in args):
                raise SyntaxProblem("ny TANISA dia tsy mandray null", index)
            return ast.EnumAtom(tuple(args))
        if args is not None:
            domain = SQL_TYPES.get(word)   # `varchar(20)`: say how Tahiry writes it
            # ... or a base type misspelled (`ISAA(0,10)`).
            hint = text("hint_english_keyword", keyword=domain, word=name) if domain \
                else name_hint(name, BASE_TYPES)
            raise SyntaxProblem(
                f"'{name}' dia tsy karazana fototra (ISA, LAHATSORATRA, DATY, TANISA): "
                "tsy mandray fari-pahalehibeazana", index, hint=hint)
        return ast.NamedAtom(name)

    @staticmethod
    def _check_bounds(name: str, args: list | None, index: int, integers: bool) -> None:
        shown = name.upper()
        if args is None or len(args) != 2:
            raise SyntaxProblem(f"ny {shown} dia mila fari-pahalehibeazana roa: {shown}(min,max)", index)
        for arg in args:
            if arg is None:
                continue
            if isinstance(arg, str):
                raise SyntaxProblem(f"ny fari-pahalehibeazan'ny {shown} dia isa na null", index)
            if integers and not isinstance(arg, int):
                raise SyntaxProblem(f"ny fari-pahalehibeazan'ny {shown} dia isa manontolo na null", index)
            if integers and arg < 0:   # (a text's length: LAHATSORATRA(-1,3) was accepted)
                raise SyntaxProblem(f"ny fari-pahalehibeazan'ny {shown} dia halava : isa manontolo "
                                    ">= 0 na null", index)

    # ---------------------------------------------------------------- queries

    @_("set_operand")
    def select_expr(self, p):
        return p.set_operand

    @_("select_expr SETOP at_opt set_operand")
    def select_expr(self, p):
        left, right = p.select_expr, p.set_operand
        return self._node(ast.SetOperation(p.SETOP, left, right), left, right)

    @_("select_core")
    def set_operand(self, p):
        return p.select_core

    @_("'(' select_expr ')'")
    def set_operand(self, p):
        return p.select_expr

    @_("ALAIVO fields from_part where_opt group_opt order_opt limit_opt")
    def select_core(self, p):
        source, joins = p.from_part
        return ast.SelectCore(p.fields, source, joins, p.where_opt, p.group_opt,
                              p.order_opt, p.limit_opt)

    @_("'*'")
    def fields(self, p):
        return None

    @_("select_items")
    def fields(self, p):
        return tuple(p.select_items)

    @_("select_item")
    def select_items(self, p):
        return [p.select_item]

    @_("select_items ',' select_item")
    def select_items(self, p):
        p.select_items.append(p.select_item)
        return p.select_items

    @_("expr")
    def select_item(self, p):
        return ast.SelectItem(p.expr, None, collapse_whitespace(self._source(p._slice[0])))

    @_("expr ID", "expr ANTSO ID")
    def select_item(self, p):
        return ast.SelectItem(p.expr, p.ID, collapse_whitespace(self._source(p._slice[0])))

    @_("empty")
    def from_part(self, p):
        return None, ()

    @_("AO at_opt source joins")
    def from_part(self, p):
        return p.source, tuple(p.joins)

    @_("ID")
    def source(self, p):
        return ast.TableSource(p.ID)

    @_("ID ID", "ID ANTSO ID")
    def source(self, p):
        return ast.TableSource(p[0], p[len(p) - 1])

    @_("'(' select_expr ')'")
    def source(self, p):
        raise SyntaxProblem(DERIVED_TABLE_ALIAS, p._slice[0].index)

    @_("'(' select_expr ')' ID", "'(' select_expr ')' ANTSO ID")
    def source(self, p):
        return ast.SubquerySource(p.select_expr, p.ID)

    @_("empty")
    def joins(self, p):
        return []

    @_("joins join")
    def joins(self, p):
        p.joins.append(p.join)
        return p.joins

    @_("JOIN at_opt source")
    def join(self, p):
        if p.JOIN in ("left", "right", "full"):
            raise SyntaxProblem(
                f"ny '{self._source(p._slice[0])}' dia mila fepetra 'ka'", p._slice[0].index)
        return ast.Join(p.JOIN, p.source)

    @_("JOIN at_opt source KA expr")
    def join(self, p):
        if p.JOIN == "natural":
            raise SyntaxProblem(
                "ny 'tonona:natoraly' dia tsy mandray fepetra 'ka'", p._slice[3].index)
        return ast.Join(p.JOIN, p.source, p.expr)

    @_("empty")
    def where_opt(self, p):
        return None

    @_("REHEFA expr")
    def where_opt(self, p):
        return p.expr

    @_("empty")
    def group_opt(self, p):
        return None

    @_("VONDRONA column_refs", "VONDRONA '(' column_refs ')'")
    def group_opt(self, p):
        return tuple(p.column_refs)

    @_("column_ref")
    def column_refs(self, p):
        return [p.column_ref]

    @_("column_refs ',' column_ref")
    def column_refs(self, p):
        p.column_refs.append(p.column_ref)
        return p.column_refs

    @_("ID")
    def column_ref(self, p):
        return ast.ColumnRef(p.ID)

    @_("QUALID")
    def column_ref(self, p):
        qualifier, name = p.QUALID.split(".")
        return ast.ColumnRef(name, qualifier)

    @_("empty")
    def order_opt(self, p):
        return ()

    @_("ALAHARO order_items")
    def order_opt(self, p):
        return tuple(p.order_items)

    @_("order_item")
    def order_items(self, p):
        return [p.order_item]

    @_("order_items ',' order_item")
    def order_items(self, p):
        p.order_items.append(p.order_item)
        return p.order_items

    @_("expr", "expr MIAKATRA", "expr MIDINA")
    def order_item(self, p):
        descending = len(p) == 2 and p._slice[1].type == "MIDINA"
        return ast.OrderItem(p.expr, descending, collapse_whitespace(self._source(p._slice[0])))

    @_("empty")
    def limit_opt(self, p):
        return None

    @_("FETRA NUMBER")
    def limit_opt(self, p):
        return ast.Limit(0, self._limit_number(p, 1))

    @_("FETRA NUMBER NUMBER")
    def limit_opt(self, p):
        return ast.Limit(self._limit_number(p, 1), self._limit_number(p, 2))

    def _limit_number(self, p, position: int) -> int:
        value = p[position]
        if not isinstance(value, int):
            raise SyntaxProblem("ny 'fetra' dia mandray isa manontolo tsy negatifa ihany",
                                p._slice[position].index)
        return value

    # ---------------------------------------------------------------- expressions
    # One `expr` rule with a precedence table (not one rule per level): a
    # leaf then costs one reduction instead of nine, which halves parse time.

    @_("expr NA expr", "expr ARY expr")
    def expr(self, p):
        left, right = p[0], p[2]
        return self._node(ast.Binary(p[1].lower(), left, right), left, right)

    @_("expr CMP expr", "expr '=' expr", "expr '+' expr", "expr '-' expr",
       "expr '*' expr", "expr '/' expr")
    def expr(self, p):
        left, right = p[0], p[2]
        return self._node(ast.Binary(p[1], left, right), left, right)

    @_("'!' expr")
    def expr(self, p):
        return self._node(ast.Unary("!", p[1]), p[1])

    @_("expr DIA NULL %prec DIA")
    def expr(self, p):
        return self._node(ast.IsNull(p[0], False), p[0])

    @_("expr DIA TSY NULL %prec DIA")
    def expr(self, p):
        return self._node(ast.IsNull(p[0], True), p[0])

    @_("'-' expr %prec UMINUS")
    def expr(self, p):
        operand = p[1]
        if type(operand) is ast.Literal and isinstance(operand.value, (int, float)):
            return ast.Literal(-operand.value)
        return self._node(ast.Unary("-", operand), operand)

    @_("NUMBER", "STRING")
    def expr(self, p):
        return ast.Literal(p[0])

    @_("NULL")
    def expr(self, p):
        return ast.Literal(None)

    @_("ID")
    def expr(self, p):
        return ast.ColumnRef(p[0])

    @_("QUALID")
    def expr(self, p):
        qualifier, name = p[0].split(".")
        return ast.ColumnRef(name, qualifier)

    @_("ID '(' ')'")
    def expr(self, p):
        return ast.FunctionCall(p[0].lower())

    @_("ID '(' '*' ')'")
    def expr(self, p):
        return ast.FunctionCall(p[0].lower(), (), True)

    @_("ID '(' exprs ')'")
    def expr(self, p):
        args = tuple(p[2])
        return self._node(ast.FunctionCall(p[0].lower(), args), *args)

    @_("'(' expr ')'")
    def expr(self, p):
        return p[1]

    @_("expr")
    def exprs(self, p):
        return [p[0]]

    @_("exprs ',' expr")
    def exprs(self, p):
        p[0].append(p[2])
        return p[0]


class StatementParser:
    """Parses one statement's text; keeps an LRU cache of parsed statements.

    Not thread-safe: use one instance per connection.
    """

    def __init__(self, cache_size: int = DEFAULT_CACHE_SIZE):
        self._lexer = TahiryLexer()
        self._grammar = _Grammar()
        self._cache: LRUCache[str, ast.Statement | None] = LRUCache(cache_size)

    def parse(self, text: str, line: int = 1, column: int = 1) -> ast.Statement | None:
        """The statement in `text` (None if it is empty or only comments).

        `line`/`column` (1-based) are where `text` starts in the whole script;
        a `TahirySyntaxError` reports positions relative to them.
        """
        cached = self._cache.get(text, _NOT_CACHED)
        if cached is not _NOT_CACHED:
            return cached
        statement = self._parse_uncached(text, line, column)
        if len(text) <= MAX_CACHED_CHARS:
            self._cache.put(text, statement)
        return statement

    def parse_select(self, text: str) -> ast.SelectExpr:
        """A SELECT_EXPR (e.g. a stored view's query)."""
        statement = self.parse(text)
        if not isinstance(statement, ast.Query):
            raise syntax_error("nandrasana fanontaniana 'alaivo'", text, 0, 1, 1)
        return statement.select

    def _parse_uncached(self, text: str, line: int, column: int) -> ast.Statement | None:
        # Bulk inserts of plain literals skip the grammar (same AST; on any
        # doubt the fast path says None and the grammar decides, errors included).
        statement = parse_literal_insert(text)
        if statement is not None:
            return statement
        return self.parse_with_grammar(text, line, column)

    @staticmethod
    def _account_head(head: list, tokens) -> bool:
        """Whether the statement starting with `head` (one token, more appended as read) is
        an account statement: `omeo`/`esory`/`ovay`, or `manamboara mpampiasa`,
        `ravao ny mpampiasa`, `asehoy ny mpampiasa`."""
        first = head[0]
        if first.type not in KEYWORD_OPENERS:
            return True
        second = next(tokens, None)
        if second is None:
            return False
        head.append(second)
        if first.type == "MANAMBOARA":
            return names_accounts(second)
        if second.type != "NY":
            return False
        third = next(tokens, None)
        if third is None:
            return False
        head.append(third)
        return names_accounts(third)

    def parse_with_grammar(self, text: str, line: int = 1, column: int = 1) -> ast.Statement | None:
        """`parse` without the cache and the literal-rows fast path (tests, benchmarks)."""
        lexer, grammar = self._lexer, self._grammar
        lexer.paren_depth = 0
        grammar.text = text
        tokens = lexer.tokens_of(text)
        try:
            first = next(tokens, None)
            if first is None:
                return None
            head = [first]
            if first.type in KEYWORD_OPENERS or opener_word(first) is not None:
                # Maybe an account statement (engine.language.account_syntax): its
                # first tokens say, read one at a time as the grammar would.
                if self._account_head(head, tokens):
                    return parse_account(head + list(tokens), text)
            statement = run_parser(grammar, chain(head, tokens))
        except SyntaxProblem as problem:
            if in_password(text, problem.index):
                # A lexer's error on a password written bare (`isa tsy mety '12ab'`)
                # would repeat it: say what is wrong without it.
                raise syntax_error(PASSWORD_UNQUOTED, text, problem.index, line, column) from None
            raise syntax_error(problem.detail, text, problem.index, line, column,
                               problem.hint or syntax_hint(text, problem.index, problem.expected)
                               ) from None
        except RecursionError:
            raise syntax_error("sarotra loatra ny fanambarana", text, 0, line, column) from None
        finally:
            # An abandoned token generator would otherwise reset the lexer's
            # text and index from its `finally` whenever it is collected.
            tokens.close()
            grammar.text = ""
            grammar.depths.clear()
            grammar._line_positions.clear()
            grammar._index_positions.clear()
            # Do not keep the last statement's symbols alive until the next parse.
            grammar.symstack = grammar.statestack = grammar.states_before_lookahead = None
        if statement is None:  # SLY gave up without calling error(): never expected
            raise syntax_error("fanambarana tsy azo vakiana", text, 0, line, column)
        return statement
