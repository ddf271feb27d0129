"""The account statements' syntax, read by hand beside the grammar (docs/LANGUAGE.md 2).

    manamboara mpampiasa NAME tenimiafina "PW" [mpitantana]
    ravao ny mpampiasa NAME
    ovay ny tenimiafina NAME "PW"
    omeo NAME zo mamaky|manoratra ao@ DB
    esory NAME zo mamaky|manoratra ao@ DB
    asehoy ny mpampiasa

None of their words is reserved (`mpampiasa`, `zo`, ... may still name
tables and columns, as before): `account_opener` recognises a statement
that starts like one of these from its first tokens (`omeo`, `esory`,
`ovay`, or `manamboara mpampiasa`, `ravao ny mpampiasa`, `asehoy ny
mpampiasa`, none of which the grammar accepts), and `parse_account`
reads the rest. Everything else goes to the grammar untouched, so its
errors and hints are exactly those of before.

Errors are `SyntaxProblem`s like the grammar's. A string literal is never
shown in one (it may be a password), and a password written without quotes
is refused without being repeated.
"""

from __future__ import annotations

from engine.language import ast
from engine.language.english import ACCOUNT_ENGLISH
from engine.language.lexer import SyntaxProblem, TahiryLexer
from engine.language.messages import text as message_text  # (`text`: a statement here)
from engine.vocabulary import RIGHT_WORDS

ACCOUNT_WORD = "mpampiasa"
PASSWORD_WORD = "tenimiafina"
ADMIN_WORD = "mpitantana"
RIGHT_WORD = "zo"
OPENERS = {"omeo": "give", "esory": "take", "ovay": "password"}
# Said of a password written without quotes (never repeated: it is the password).
PASSWORD_UNQUOTED = ("ny tenimiafina dia lahatsoratra eo anelanelan'ny marika \" na ' "
                     "(ohatra tenimiafina \"...\")")
# The words of these statements (none reserved): never taken for a misspelling
# of a keyword in a hint (engine/language/hints.py).
ACCOUNT_WORDS = frozenset({ACCOUNT_WORD, PASSWORD_WORD, ADMIN_WORD, RIGHT_WORD, *OPENERS,
                           *RIGHT_WORDS})
# `manamboara`, `ravao ny`, `asehoy ny`, then `mpampiasa`.
KEYWORD_OPENERS = frozenset({"MANAMBOARA", "RAVAO", "ASEHOY"})


# The first words of the statements that set a password, lower-cased.
PASSWORD_OPENERS = ("manamboara", "ovay")
# The language's comments run from one of these to the end of the line.
COMMENT_MARKS = ("--", "//")
# Comments before a statement are looked through this far (`may_set_password`).
COMMENTS_SCANNED = 4096


def may_set_password(text: str) -> bool:
    """Whether `text` may be a statement that sets a password (`manamboara mpampiasa
    ... tenimiafina "PW"`, `ovay ny tenimiafina NAME "PW"`), from its text alone.

    Cheap enough for every statement a server receives (no lexing, and a
    long text is not copied unless it starts like one); it may say yes to
    other statements (the parser decides). Comments before the statement
    are skipped (within the first COMMENTS_SCANNED characters: past them it
    says no, and the statement is still run right, its password then
    hashed where it runs, engine/evaluation/accounts.py).
    """
    head = text[:64].lstrip()
    if head.startswith(COMMENT_MARKS):
        head = _after_comments(text)[:64]
    if not head.lower().startswith(PASSWORD_OPENERS):
        return False
    return PASSWORD_WORD in text.lower()


def _after_comments(text: str) -> str:
    """`text` after its leading spaces and comment lines (`--`, `//`), looked for in
    its first COMMENTS_SCANNED characters ("" if they are all comments)."""
    scanned = text[:COMMENTS_SCANNED]
    at = 0
    while True:
        rest = scanned[at:].lstrip()
        if not rest.startswith(COMMENT_MARKS):
            return rest + text[COMMENTS_SCANNED:] if rest else ""
        end = scanned.find("\n", len(scanned) - len(rest))
        if end < 0:
            return ""
        at = end + 1


def opener_word(token) -> str | None:
    """'give', 'take' or 'password' when `token` (a statement's first) opens one of those."""
    if token.type == "ID":
        return OPENERS.get(token.value.lower())
    return None


def names_accounts(token) -> bool:
    """Whether `token` is the word `mpampiasa` (after `manamboara`, `ravao ny`, `asehoy ny`)."""
    return token.type == "ID" and token.value.lower() == ACCOUNT_WORD


def _expected(expected: str, token) -> SyntaxProblem:
    """The error for `token` (None: the statement ended) found where `expected` was due."""
    if token is None:
        return SyntaxProblem(f"nandrasana {expected} fa tapitra ny fanambarana", -1)
    if token.type == "STRING":  # maybe a password: never repeated
        return SyntaxProblem(f"nandrasana {expected} fa lahatsoratra no hita", token.index)
    found = str(token.value)
    if len(found) > 40:
        found = found[:37] + "..."
    return SyntaxProblem(f"nandrasana {expected} fa '{found}' no hita", token.index)


class _Reader:
    """The tokens of one account statement, read left to right."""

    def __init__(self, tokens: list, text: str):
        self.tokens = tokens
        self.text = text
        self.position = 0

    def peek(self):
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _end_index(self) -> int:
        if self.tokens:
            last = self.tokens[-1]
            return getattr(last, "end", last.index + 1)
        return len(self.text)

    def fail(self, expected: str, words: frozenset[str] = frozenset()):
        token = self.peek()
        problem = _expected(expected, token)
        if token is None:
            problem.index = self._end_index()
        problem.expected = words
        if token is not None and token.type == "ID":
            # `password`, `admin`, `read`: the teacher's English word for the one expected.
            keyword = ACCOUNT_ENGLISH.get(token.value.lower())
            if keyword in words:
                problem.hint = message_text("hint_english_keyword", keyword=keyword,
                                            word=token.value)
        raise problem

    def take(self):
        token = self.peek()
        self.position += 1
        return token

    def word(self, word: str) -> None:
        token = self.peek()
        if token is None or token.type != "ID" or token.value.lower() != word:
            self.fail(f"'{word}'", frozenset({word}))
        self.position += 1

    def keyword(self, token_type: str, shown: str) -> None:
        token = self.peek()
        if token is None or token.type != token_type:
            self.fail(f"'{shown}'", frozenset({shown.rstrip("@")}))
        self.position += 1

    def name(self) -> str:
        token = self.peek()
        if token is None or token.type != "ID":
            self.fail("anarana")
        self.position += 1
        return token.value

    def password(self) -> str:
        token = self.peek()
        if token is not None and token.type == "STRING":
            self.position += 1
            return token.value
        if token is None or token.type == ";":
            self.fail("tenimiafina (lahatsoratra)")
        raise SyntaxProblem(PASSWORD_UNQUOTED, token.index)

    def right(self) -> str:
        token = self.peek()
        if token is not None and token.type == "ID" and token.value.lower() in RIGHT_WORDS:
            self.position += 1
            return RIGHT_WORDS[token.value.lower()]
        self.fail("'mamaky' na 'manoratra'", frozenset(RIGHT_WORDS))
        raise AssertionError  # fail raised

    def end(self) -> None:
        token = self.peek()
        if token is not None and token.type == ";":
            self.position += 1
            token = self.peek()
            if token is not None:
                raise SyntaxProblem("fanambarana iray ihany no azo atao eto", token.index)
            return
        if token is not None:
            self.fail("';'")


def parse_account(tokens: list, text: str) -> ast.Statement:
    """The account statement made of `tokens` (all of the statement's, first included)."""
    reader = _Reader(tokens, text)
    first = reader.take()
    statement: ast.Statement
    if first.type == "MANAMBOARA":
        reader.word(ACCOUNT_WORD)
        name = reader.name()
        reader.word(PASSWORD_WORD)
        password = reader.password()
        admin = False
        token = reader.peek()
        if token is not None and token.type == "ID" and token.value.lower() == ADMIN_WORD:
            reader.take()
            admin = True
        elif token is not None and token.type != ";":
            reader.fail(f"'{ADMIN_WORD}' na ';'", frozenset({ADMIN_WORD}))
        statement = ast.CreateAccount(name, password, admin)
    elif first.type == "RAVAO":
        reader.keyword("NY", "ny")
        reader.word(ACCOUNT_WORD)
        statement = ast.DropAccount(reader.name())
    elif first.type == "ASEHOY":
        reader.keyword("NY", "ny")
        reader.word(ACCOUNT_WORD)
        statement = ast.ShowAccounts()
    elif opener_word(first) == "password":
        reader.keyword("NY", "ny")
        reader.word(PASSWORD_WORD)
        name = reader.name()
        statement = ast.SetPassword(name, reader.password())
    else:
        give = opener_word(first) == "give"
        account = reader.name()
        reader.word(RIGHT_WORD)
        right = reader.right()
        database = reader.peek()
        if database is not None and database.type == "ID":
            # `omeo soa zo mamaky sekoly`: `ao@` forgotten before the database, as in
            # `alaivo * mpianatra`.
            problem = _expected("'ao@'", database)
            problem.hint = message_text("hint_forgot_ao", word=database.value, example=(
                f"{first.value} {account} zo {reader.tokens[reader.position - 1].value} "
                f"ao@ {database.value}"))
            raise problem
        reader.keyword("AO", "ao@")
        token = reader.peek()
        if token is not None and token.type == "@":
            reader.take()
        statement = ast.Grant(account, right, reader.name(), give)
    reader.end()
    return statement


def password_set_for(text: str, account: str) -> str | None:
    """The password `text` gives `account` when it is one statement `ovay ny tenimiafina
    ACCOUNT "PW"` (comments around it allowed); else None.

    For whoever replays a session's login on its new connections (the
    client, the proxy cache, the balancer): once such a statement of the
    session's own account succeeded, the old password logs in nowhere.
    """
    if not may_set_password(text):
        return None
    try:
        tokens = list(TahiryLexer().tokenize(text))
        if not tokens or opener_word(tokens[0]) != "password":
            return None
        statement = parse_account(tokens, text)
    except SyntaxProblem:
        return None
    if isinstance(statement, ast.SetPassword) and statement.name == account:
        return statement.password
    return None
