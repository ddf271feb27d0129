"""The SLY lexer of the query language (LANGUAGE.md sections 1 and 4b).

Keywords are case-insensitive whole words: the identifier rule looks the
lower-cased word up in `KEYWORDS` (SLY's own remapping is case-sensitive).
The type words (`isa`, `lahatsoratra`, `daty`, `tanisa`) are plain names here;
the parser gives them meaning where a domain is expected.

Context the grammar cannot see with one token of lookahead is settled here:
- `#` is dropped when a word it may mark follows (spaces allowed between);
- `tonona:KIND` is one JOIN token whose value is the join kind;
- `+` and `-` are set operators (SETOP) when `@` or `alaivo` follows them
  (possibly after parentheses), arithmetic otherwise; `^` is always SETOP.

Errors raise `SyntaxProblem` carrying the offending index into the text; the
parser turns it into a `TahirySyntaxError` with line and column.
"""

from __future__ import annotations

import re
import sys

from sly import Lexer
from sly.lex import Token

from engine.errors import EngineError
from engine.language.english import FOREIGN_OPERATORS
from engine.language.messages import text
from engine.vocabulary import JOIN_KINDS, SET_OPERATOR_SYMBOLS, SET_OPERATOR_WORDS

# The largest number of the language: a literal beyond it is refused, integers
# too, and so is a computed result (engine.evaluation.values). Beyond a
# float's range a decimal would be infinite, and an integer of more than 4300
# digits cannot even be printed (Python's str() limit).
MAX_NUMBER = sys.float_info.max

# Lower-cased word -> token type. All statement and clause words are reserved.
KEYWORDS: dict[str, str] = {
    "ampiasao": "AMPIASAO",
    "asehoy": "ASEHOY",
    "ny": "NY",
    "tahiry": "TAHIRY",
    "tabilao": "TABILAO",
    "efitra": "EFITRA",
    "jery": "JERY",
    "manamboara": "MANAMBOARA",
    "ravao": "RAVAO",
    "alaivo": "ALAIVO",
    "ao": "AO",
    "rehefa": "REHEFA",
    "antso": "ANTSO",
    "tonona": "JOIN",
    "ka": "KA",
    "vondrona": "VONDRONA",
    "fetra": "FETRA",
    "ankambana": "SETOP",
    "analana": "SETOP",
    "atifitra": "SETOP",
    "manampia": "MANAMPIA",
    "sanda": "SANDA",
    "havaozy": "HAVAOZY",
    "ova": "OVA",
    "fafao": "FAFAO",
    "alaharo": "ALAHARO",
    "miakatra": "MIAKATRA",
    "midina": "MIDINA",
    "ary": "ARY",
    "na": "NA",
    "dia": "DIA",
    "tsy": "TSY",
    "null": "NULL",
}

# Words that a `#` may stand before (LANGUAGE.md 1 and 4b).
HASH_WORDS = frozenset({
    "ao", "rehefa", "tonona", "ka", "vondrona", "fetra", "antso", "ankambana",
    "analana", "atifitra", "sanda", "ary", "na", "alaharo",
})

# Nesting deeper than this is refused: evaluating it would exhaust the stack.
MAX_PAREN_DEPTH = 50

_WORD = re.compile(r"[^\W\d]\w*")
_JOIN_KIND = re.compile(r":(\w*)")
_AT_AHEAD = re.compile(r"\s*@")
# What follows a `+`/`-` that makes it a set operator: `@`, or a SELECT
# (`alaivo`, maybe after `(` and `#`); `- alaivo` can never be arithmetic.
_SETOP_AHEAD = re.compile(
    r"(?:\s|--[^\n]*|//[^\n]*)*(?:@|(?:\((?:\s|--[^\n]*|//[^\n]*)*)*(?:\#\s*)?alaivo(?!\w))",
    re.IGNORECASE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
_ESCAPE_OR_DOUBLE = {
    "'": re.compile(r"\\(.)|''", re.DOTALL),
    '"': re.compile(r'\\(.)|""', re.DOTALL),
}


class SyntaxProblem(EngineError):
    """A syntax error at `index` in the text; `detail` says what is wrong there.

    `expected`: the keywords the grammar would have taken there (lower case),
    when it says (None: it does not say; empty: no keyword could come there);
    the "did you mean" hint chooses among them.
    """

    def __init__(self, detail: str, index: int, expected: frozenset[str] | None = None,
                 hint: str = ""):
        super().__init__(detail)
        self.detail = detail
        self.index = index
        self.expected = expected
        self.hint = hint   # decided where the error was found (else engine.language.hints)


def decode_string(body: str, quote: str) -> str:
    """The value of a string literal's body (between its `quote` characters)."""
    doubled = quote + quote
    if "\\" not in body and doubled not in body:
        return body

    def replace(match: re.Match) -> str:
        escaped = match.group(1)
        if escaped is not None:
            return _ESCAPES.get(escaped, escaped)
        return quote

    return _ESCAPE_OR_DOUBLE[quote].sub(replace, body)


def clip(text: str, limit: int = 40) -> str:
    """`text` shortened for an error message."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


# Quotes a word processor or a PDF puts in a pasted statement, and MySQL's backquote:
# none quotes anything in Tahiry, and their error says which quotes do.
OTHER_QUOTES = frozenset("\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u00ab\u00bb\u2032\u2033`")


def describe_char(char: str) -> str:
    if char == "\n":
        return "'\\n'"
    if char.isprintable():
        return f"'{char}'"
    return f"U+{ord(char):04X}"


class TahiryLexer(Lexer):
    tokens = {
        ID, QUALID, NUMBER, STRING,  # noqa: F821 (SLY injects the names)
        AMPIASAO, ASEHOY, NY, TAHIRY, TABILAO, EFITRA, JERY, MANAMBOARA,  # noqa: F821
        RAVAO, ALAIVO, AO, REHEFA, ANTSO, JOIN, KA, VONDRONA, FETRA, SETOP,  # noqa: F821
        MANAMPIA, SANDA, HAVAOZY, OVA, FAFAO, ALAHARO, MIAKATRA, MIDINA,  # noqa: F821
        ARY, NA, DIA, TSY, NULL, CMP,  # noqa: F821
    }
    literals = {"=", "+", "-", "*", "/", "!", "(", ")", ",", ";", "@", ":"}
    ignore = " \t\r\n\f\v"
    reflags = re.DOTALL

    def __init__(self):
        self.paren_depth = 0

    ignore_comment = r"(?:--|//)[^\n]*"

    # Possessive: `'ab''` is an unterminated "ab'", never 'ab' then a quote.
    @_(r"'[^'\\]*+(?:(?:''|\\.)[^'\\]*+)*+'", r'"[^"\\]*+(?:(?:""|\\.)[^"\\]*+)*+"')
    def STRING(self, t):
        t.value = decode_string(t.value[1:-1], t.value[0])
        return t

    @_(r"['\"]")
    def UNTERMINATED(self, t):
        raise SyntaxProblem("tsy voafarana ny lahatsoratra manomboka eto", t.index)

    @_(r"[0-9]+(?:\.[0-9]+)?")
    def NUMBER(self, t):
        following = self.text[self.index:self.index + 1]
        if following == "." or (following and (following.isalnum() or following == "_")):
            end = self.index
            word = re.compile(r"[\w.]*").match(self.text, end)
            shown = clip(self.text[t.index:word.end()])
            raise SyntaxProblem(f"isa tsy mety '{shown}' (isa toy ny 12 na 12.5 ihany)", t.index)
        try:
            value = float(t.value) if "." in t.value else int(t.value)
        except ValueError:  # more digits than Python converts
            value = float("inf")
        if value > MAX_NUMBER:  # integers too: see MAX_NUMBER
            raise SyntaxProblem("isa lehibe loatra", t.index)
        t.value = value
        return t

    @_(r"[^\W\d]\w*(?:\.[^\W\d]\w*)?")
    def ID(self, t):
        text = self.text
        end = self.index
        if end < len(text) and text[end] == ".":
            if text.startswith("*", end + 1):   # SQL's `t.*`
                raise SyntaxProblem(
                    f"tsy misy '{clip(t.value)}.*' amin'ny Tahiry : alaivo * (ny tsanganana "
                    f"rehetra) na ny tsanganana tsirairay ({clip(t.value)}.a, "
                    f"{clip(t.value)}.b, ...)", t.index)
            raise SyntaxProblem(
                f"anarana diso '{clip(t.value)}.' (table.colonne ihany, tsy misy elanelana)", t.index)
        word = t.value
        if "." in word:
            for part in word.split("."):
                if part.lower() in KEYWORDS:
                    raise SyntaxProblem(
                        f"'{part}' dia teny voatokana, tsy azo atao anarana", t.index)
            t.type = "QUALID"
            return t
        kind = KEYWORDS.get(word.lower())
        if kind is None:
            return t
        t.type = kind
        if kind == "SETOP":
            t.value = SET_OPERATOR_WORDS[word.lower()]
        elif kind == "JOIN":
            t.value = self._join_kind(t)
            t.end = self.index
        return t

    def _join_kind(self, t) -> str:
        """`tonona`, `tonona:KIND` or `tonona:` (then `@` must follow)."""
        text = self.text
        if not text.startswith(":", self.index):
            return "inner"
        match = _JOIN_KIND.match(text, self.index)
        kind_word = match.group(1)
        if kind_word:
            kind = JOIN_KINDS.get(kind_word.lower())
            if kind is None:
                raise SyntaxProblem(
                    f"karazana tonona tsy fantatra '{clip(kind_word)}' (anatiny, avia, ankavia, "
                    "avanana, ankavanana, feno, natoraly)", self.index + 1)
            self.index = match.end()
            return kind
        if not _AT_AHEAD.match(text, self.index + 1):
            raise SyntaxProblem(
                "nandrasana karazana tonona na '@' taorian'ny 'tonona:'", self.index + 1)
        self.index += 1
        return "inner"

    @_(r"\#\s*")
    def HASH(self, t):
        word = _WORD.match(self.text, self.index)
        if word is None or word.group().lower() not in HASH_WORDS:
            raise SyntaxProblem(
                "'#' dia tsy azo atao afa-tsy eo alohan'ny teny fototra "
                "(ao@, rehefa, tonona, ka, vondrona, alaharo, fetra, antso, ...)", t.index)
        return None

    CMP = r"!=|<=|>=|<|>"

    @_(r"[+\-^]")
    def ARITH_OR_SETOP(self, t):
        if t.value == "^" or _SETOP_AHEAD.match(self.text, self.index):
            t.type = "SETOP"
            t.value = SET_OPERATOR_SYMBOLS[t.value]
        else:
            t.type = t.value
        return t

    @_(r"\(")
    def LPAREN(self, t):
        self.paren_depth += 1
        if self.paren_depth > MAX_PAREN_DEPTH:
            raise SyntaxProblem(
                f"lalina loatra ny fanaovana fonon-teny (mihoatra ny {MAX_PAREN_DEPTH})", t.index)
        t.type = "("
        return t

    @_(r"\)")
    def RPAREN(self, t):
        self.paren_depth -= 1
        t.type = ")"
        return t

    def error(self, t):
        char = t.value[0]
        hint = text("hint_plain_quotes") if char in OTHER_QUOTES else ""
        written = next((word for word in FOREIGN_OPERATORS
                        if t.value.startswith(word)), None)
        if written is not None:   # `≥`, `&&`
            hint = text("hint_english_keyword", keyword=FOREIGN_OPERATORS[written], word=written)
        raise SyntaxProblem(f"marika tsy fantatra {describe_char(char)}", self.index, hint=hint)

    def tokens_of(self, text: str):
        """The tokens of `text`, exactly as SLY's `tokenize` yields them, faster.

        SLY calls a rule function for every word; here names, qualified
        names and keywords (all but `tonona` and the set-operator words) are
        made inline, and everything else goes through the same rule functions with
        the same `text` / `index` protocol. Tests compare both token streams.
        """
        match_at = self._master_re.match
        functions = self._token_funcs
        literals = self.literals
        ignore = self.ignore
        keywords = KEYWORDS
        inline_kinds = _INLINE_KEYWORD_KINDS
        length = len(text)
        index = 0
        self.text = text
        try:
            while index < length:
                char = text[index]
                if char in ignore:
                    index += 1
                    continue
                match = match_at(text, index)
                if match is None:
                    token = Token()
                    token.lineno = 1
                    token.index = index
                    if char not in literals:
                        self.index = index
                        token.type = "ERROR"
                        token.value = text[index:]
                        self.error(token)  # raises
                    token.type = token.value = char
                    index = token.end = index + 1
                    yield token
                    continue
                kind = match.lastgroup
                end = match.end()
                value = match.group()
                token = Token()
                token.lineno = 1
                token.index = index
                token.end = end
                token.value = value
                if kind == "ID" and (end == length or text[end] != "."):
                    if "." in value:
                        qualifier, _, name = value.partition(".")
                        if qualifier.lower() not in keywords and name.lower() not in keywords:
                            token.type = "QUALID"
                            index = end
                            yield token
                            continue
                    else:
                        keyword = keywords.get(value.lower())
                        if keyword is None or keyword in inline_kinds:
                            token.type = keyword or "ID"
                            index = end
                            yield token
                            continue
                token.type = kind
                function = functions.get(kind)
                if function is None:
                    index = end
                    if kind == "comment":
                        continue
                    yield token
                    continue
                self.index = end
                token = function(self, token)
                index = self.index
                if token:
                    yield token
        finally:
            self.text = text
            self.index = index


# Keyword token types `tokens_of` makes inline (the others change the value).
_INLINE_KEYWORD_KINDS = frozenset(KEYWORDS.values()) - {"SETOP", "JOIN"}
