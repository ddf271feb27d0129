"""The Tahiry wire protocol, sans-IO: pure functions and small state machines over bytes.

Compatible with the original DirkDB server and client (see docs/ARCHITECTURE.md):

- a request is UTF-8 statement text ending with `;` outside string literals
  and comments;
- each statement gets one response: for a relation, pages of
  `RELATION_JSON_PAGE k/n` + one JSON line, then `RELATION_JSON_END`; then
  always `RESULT_MESSAGE`, one message line and `END`.

`RequestFramer` turns a byte stream into `Request`s (statements, admin
requests `.ping;` / `.status;` / `.auth` / `.login` / `.versions` / `.rights;`,
or framing errors), with every buffer bounded.
`encode_outcome` / `encode_message` write responses; `ResponseDecoder` reads
them back (merging pages) and keeps each response's raw bytes so a proxy can
replay them. Nothing here touches a socket, so all of it is unit-tested alone.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass

import orjson

from engine.errors import ERROR_PREFIX
from engine.evaluation.outcome import Column, Outcome, Relation
from engine.language.script import StatementSplitter, normalise_statement
from nodes.errors import NodeError

PAGE_HEADER = "RELATION_JSON_PAGE"
RELATION_END = "RELATION_JSON_END"
RESULT_MESSAGE = "RESULT_MESSAGE"
END = "END"

DEFAULT_MAX_REQUEST_BYTES = 1 << 20          # 1 MiB of statement text
DEFAULT_PAGE_ROWS = 1000
DEFAULT_MAX_RESPONSE_BYTES = 512 << 20       # a decoder refuses bigger responses

ADMIN_PING = "ping"
ADMIN_STATUS = "status"
ADMIN_AUTH = "auth"              # `.auth <secret>;`: see docs/SECURITY.md
ADMIN_VERSIONS = "versions"      # `.versions <db> <object> ...;`: change counters (servers)
ADMIN_PEER = "peer"              # `.peer <verb> ...;`: a server's peers (nodes/protocol/peer.py)
ADMIN_LOGIN = "login"            # `.login <name> "<password>";`: nodes/protocol/login.py
ADMIN_RIGHTS = "rights"          # `.rights;`: the servers' rights generations (proxy cache)
ADMIN_STOP = "stop"              # `.stop <name>;`: an administrator stops an account's statement
_ADMIN_WORDS = {".ping": ADMIN_PING, ".status": ADMIN_STATUS, ".rights": ADMIN_RIGHTS}
AUTH_WORD = ".auth"
VERSIONS_WORD = ".versions"
PEER_WORD = ".peer"
LOGIN_WORD = ".login"
STOP_WORD = ".stop"
# Admin words followed by arguments.
# (`.status <token>;`: the supervisor's probe, nodes/protocol/status_token.py.)
_ADMIN_PREFIXES = ((AUTH_WORD, ADMIN_AUTH), (VERSIONS_WORD, ADMIN_VERSIONS),
                   (PEER_WORD, ADMIN_PEER), (LOGIN_WORD, ADMIN_LOGIN), (".status", ADMIN_STATUS),
                   (STOP_WORD, ADMIN_STOP))
MAX_SECRET_CHARS = 256
# A request cut off inside a string or a comment: how long the framer waits
# for more bytes before answering it with a syntax error (`RequestFramer.stuck`).
STUCK_REQUEST_QUIET_S = 1.5
# (Malagasy whole, then the English between parentheses, as the nodes' login texts.)
STUCK_REQUEST = (ERROR_PREFIX + "Fahadisoana ara-pitsipika : tapitra tao anaty lahatsoratra na "
                 "fanamarihana (`--`, `//`) ny fangatahana, ka tsy namarana azy ny `;` ; tsy "
                 "nisy natao (ataovy miverina an-dalana aorian'ny fanamarihana `--`, akatony ny "
                 "marika ' na \" rehetra) (syntax error: the request ended inside a string or a "
                 "comment, so its `;` did not end it; nothing was run: end a `--` comment with a "
                 "newline, close every quote)")
# Every "too many connections" refusal (a node at its cap, an address at its
# cap, unauthenticated connections evicted) starts with these words, which
# the load balancer recognises as a backend problem (`is_too_many_connections`).
TOO_MANY_CONNECTIONS = "Be loatra ny fifandraisana"

# Lone surrogates U+DC80..U+DCFF are what `surrogateescape` makes of bytes that
# are not UTF-8; they can never come out of decoding valid UTF-8.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029\x85]")
# A chunk that is one whole statement ending at its last byte, the `;`: code
# without a comment marker and string literals each closed (a quote doubled or
# anything after a backslash stays inside, as `StatementSplitter` reads them;
# a `;` inside is theirs). One C match instead of the splitter's scan, which
# would cut the statement at the same `;` (a backslash skips one byte here,
# one character there: the rest of a UTF-8 character is no quote either).
_ONE_STATEMENT = re.compile(
    rb"""(?:[^'"\-/;]++"""
    rb"""|'[^'\\]*+(?:(?:''|\\[\s\S])[^'\\]*+)*+'"""
    rb'''|"[^"\\]*+(?:(?:""|\\[\s\S])[^"\\]*+)*+"'''
    rb"""|-(?!-)|/(?!/))*+;""")


class ProtocolError(NodeError):
    """A response stream that does not follow the wire format."""


# --------------------------------------------------------------------------
# Requests


@dataclass(frozen=True, repr=False)
class Request:
    """One framed request.

    text: the statement without its terminating `;`, stripped of surrounding
    whitespace. admin: ADMIN_PING / ADMIN_STATUS / ADMIN_AUTH / ADMIN_VERSIONS /
    ADMIN_PEER / ADMIN_LOGIN / ADMIN_RIGHTS for admin requests, else None.
    error: for a request that could not be framed (too long, not UTF-8), the
    full error message `Hadisoana : ...` to answer with; text is then empty
    and the statement must not be run.
    """

    text: str
    admin: str | None = None
    error: str | None = None

    @property
    def is_statement(self) -> bool:
        return self.admin is None and self.error is None

    def __repr__(self) -> str:
        # A secret or a password must never reach a log line through a repr.
        text = self.text
        if self.admin in (ADMIN_AUTH, ADMIN_LOGIN):
            kept = 2 if self.admin == ADMIN_LOGIN else 1
            text = " ".join(text.split(None, kept)[:kept]) + " ***"
        return f"Request(text={text!r}, admin={self.admin!r}, error={self.error!r})"

    def wire(self) -> bytes:
        """The bytes to forward this request upstream."""
        return statement_bytes(self.text)


def statement_bytes(text: str) -> bytes:
    """Wire form of one statement given without its `;`.

    A text that may end inside a `--`/`//` comment (its line break was
    stripped with the surrounding blanks) gets one back before the `;`,
    which would otherwise fall inside the comment and leave the statement
    unfinished upstream.
    """
    if ("--" in text or "//" in text) and _ends_in_comment_line(text):
        return (text + "\n;").encode("utf-8")
    return (text + ";").encode("utf-8")


def _ends_in_comment_line(text: str) -> bool:
    """Whether the last line of `text` holds `--` or `//` (maybe in a string: a line
    break added after it is harmless then)."""
    last = text[text.rfind("\n") + 1:]
    return "--" in last or "//" in last


class RequestFramer:
    """Incremental framing of a request byte stream into `Request`s.

    Bytes may arrive in any chunking (a UTF-8 sequence or a string literal
    split across reads). Statement boundaries are found by the engine's
    `StatementSplitter`, so `;` inside strings and comments is handled exactly
    as the engine does. Bounded: a statement longer than max_request_bytes
    (its UTF-8 bytes) yields one error request; one still arriving is
    discarded as soon as it holds more characters than that (so at most 4
    bytes a character are held for it).
    Bytes that are not UTF-8 make that statement an error request. Empty
    statements (blank or comments only) yield nothing.
    """

    def __init__(self, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES):
        self.max_request_bytes = max_request_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._splitter = StatementSplitter()
        self._discarding = False
        # The last chunk framed by the fast path below and its request: a
        # client repeating a statement (a cache hit's usual shape) sends the
        # same bytes, framed the same way (a Request is immutable).
        self._last_chunk = b""
        self._last_request: Request | None = None
        # The last chunk ended with `;` (set on the slow path only: a fast-path
        # chunk ends a statement, leaving nothing pending). A plain attribute,
        # read for every chunk before `stuck` is asked.
        self.ended_with_semicolon = False
        # Nothing is held back from the chunks so far: not discarding, no
        # statement text pending in the splitter, no partial character in the
        # decoder. Only the slow path and `abandon` change those, and they
        # set this again (one attribute read for the fast path's three checks).
        self._clean = True

    def feed(self, data: bytes) -> list[Request]:
        if data == self._last_chunk and self._clean:
            # Passed every check of the fast path below last time; only the
            # state before it could differ, and that was just checked.
            return [self._last_request] if self._last_request is not None else []
        if data[-1:] == b";" and self._clean and _ONE_STATEMENT.fullmatch(data):
            # The common chunk: one whole statement and nothing held back from
            # the chunks before it: the splitter would cut it at its last `;`
            # and be left with nothing pending (its line count, which no
            # request carries, is all it would have learnt).
            try:
                text = data[:-1].decode("utf-8")
            except UnicodeDecodeError:
                pass  # the splitter's way, with the undecodable bytes marked
            else:
                # Decoded strictly: no byte was escaped into a lone surrogate.
                request = self._request(text, undecodable=False)
                self._last_chunk, self._last_request = data, request
                return [request] if request is not None else []
        self.ended_with_semicolon = data[-1:] == b";"
        self._clean = False   # (set again below)
        statements = self._splitter.feed(self._decoder.decode(data))
        if self._discarding and statements:
            # The over-long statement ends here; it was answered when it
            # crossed the limit.
            statements = statements[1:]
            self._discarding = False
        requests = [r for r in (self._request(p.text) for p in statements) if r is not None]
        if not self._discarding and self._splitter.pending_length() > self.max_request_bytes:
            self._discarding = True
            requests.append(self._too_long())
        if self._discarding:
            # Keep the splitter's string/comment state, not the text.
            self._splitter.discard_pending()
        self._clean = (not self._discarding and not self._splitter.pending_length()
                       and self._decoder.getstate()[0] == b"")
        return requests

    def _too_long(self) -> Request:
        return Request("", error=ERROR_PREFIX + (
            f"Lava loatra ny fangatahana (mihoatra ny {self.max_request_bytes} octets)"))

    @property
    def pending(self) -> bool:
        """Whether an unfinished statement is buffered (text after the last `;`)."""
        return self._discarding or self._splitter.pending_length() > 0

    @property
    def stuck(self) -> bool:
        """Whether the bytes so far end with a `;` that did not end a statement.

        Outside strings and comments a `;` always ends one, so a statement
        still pending right after a chunk ending in `;` means that `;` fell
        inside a string or a `--`/`//` comment: a client that sends no
        newline (the DirkDB Java client joins its lines with spaces) would
        wait forever for an answer. The node answers `abandon()` once no
        more bytes come for STUCK_REQUEST_QUIET_S.
        """
        return self.ended_with_semicolon and self._splitter.pending_length() > 0

    def abandon(self) -> Request:
        """Drop the unfinished statement and start afresh; the error request to answer it with."""
        self._splitter.finish()
        self._decoder.reset()
        self._discarding = False
        self.ended_with_semicolon = False
        self._clean = True
        return Request("", error=STUCK_REQUEST)

    def _request(self, statement: str, undecodable: bool = True) -> Request | None:
        """The request of one statement's text (`undecodable`: it may hold escaped bytes)."""
        text = statement.strip()
        if not text or (text[:2] in ("--", "//") and not normalise_statement(text)):
            return None  # blank or comments only: no statement, no response
        if len(text) > self.max_request_bytes or (
                len(text) * 4 > self.max_request_bytes   # (a character is at most 4 bytes)
                and len(text.encode("utf-8", "surrogateescape")) > self.max_request_bytes):
            return self._too_long()
        if undecodable and _UNDECODABLE.search(text):
            return Request("", error=ERROR_PREFIX + "Tsy UTF-8 ny fangatahana (octets tsy azo vakiana)")
        if text[0] == ".":   # every admin word starts with it (and no other letter lowers to it)
            admin = _ADMIN_WORDS.get(text.lower())
            if admin is not None:
                return Request(text, admin=admin)
            for word, admin in _ADMIN_PREFIXES:
                if text[:len(word)].lower() == word and (
                        len(text) == len(word) or text[len(word)].isspace()):
                    return Request(text, admin=admin)
        return Request(text)


# --------------------------------------------------------------------------
# The shared secret (docs/SECURITY.md)


def secret_problem(secret: str) -> str | None:
    """Why `secret` cannot be used as a shared secret, or None if it can.

    It must survive statement framing unchanged: printable ASCII without
    spaces, `;` or quotes, and no `--` or `//` (they start comments).
    """
    if not secret:
        return "the secret is empty"
    if len(secret) > MAX_SECRET_CHARS:
        return f"the secret is longer than {MAX_SECRET_CHARS} characters"
    if any(not "\x21" <= ch <= "\x7e" or ch in ";'\"" for ch in secret):
        return "the secret may only hold printable ASCII characters other than space, ; ' and \""
    if "--" in secret or "//" in secret:
        return "the secret may not contain -- or // (they start comments)"
    return None


def auth_request(secret: str) -> bytes:
    """The wire bytes of `.auth <secret>;`; ValueError if the secret cannot be sent."""
    problem = secret_problem(secret)
    if problem is not None:
        raise ValueError(problem)
    return f"{AUTH_WORD} {secret};".encode("ascii")


def auth_secret(request: Request) -> str:
    """The secret presented by an ADMIN_AUTH request ("" if none)."""
    return request.text[len(AUTH_WORD):].strip()


# --------------------------------------------------------------------------
# Change counters (`.versions`): what the load balancer's read-your-writes
# check asks a server


def versions_request(database: str, objects: list[str] | tuple[str, ...]) -> bytes:
    """The wire bytes of `.versions <database> <object> ...;`."""
    return f"{VERSIONS_WORD} {database} {' '.join(objects)};".encode()


def versions_arguments(request: Request) -> tuple[str, list[str]]:
    """(database, object names) of a `.versions` request; ValueError with a sentence if malformed."""
    words = request.text[len(VERSIONS_WORD):].split()
    if len(words) < 2:
        raise ValueError("`.versions` expects a database and at least one object name")
    return words[0], words[1:]


def decode_versions(message: str) -> dict[str, dict[str, int]] | None:
    """The answer to `.versions` (object -> {kind: change counter}), or None if malformed."""
    try:
        value = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(kinds, dict) and all(isinstance(n, int) for n in kinds.values())
            for kinds in value.values()):
        return None
    return value


# --------------------------------------------------------------------------
# Encoding responses


def one_line(message: str) -> str:
    """The message with every line break replaced, so it fits one line."""
    return _LINE_BREAKS.sub(" ", message)


def encode_message(message: str) -> bytes:
    """A response with only a message (success text or `Hadisoana : ...`)."""
    return f"{RESULT_MESSAGE}\n{one_line(message)}\n{END}\n".encode("utf-8", "replace")


def encode_error(sentence_or_message: str) -> bytes:
    """An error response; adds the `Hadisoana : ` prefix if missing."""
    message = sentence_or_message
    if not message.startswith(ERROR_PREFIX):
        message = ERROR_PREFIX + message
    return encode_message(message)


def _dumps(value: object) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        # orjson refuses integers beyond 64 bits; the stdlib does not.
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# A run of 19 digits: maybe an integer beyond 64 bits, which orjson would read as
# the nearest float (12345678901234567891234 as 1.2345678901234568e+22) though the
# engine computes it exactly (`alaivo 9223372036854775807 * 10;`). Such a page goes
# through the stdlib; a string of digits that long only costs that slower decoder.
_LONG_DIGITS = re.compile(rb"\d{19}")


def _loads_page(line: bytes) -> object:
    if _LONG_DIGITS.search(line) is None:
        return orjson.loads(line)
    return json.loads(line)


def is_too_many_connections(message: str) -> bool:
    """Whether an answer's message is a node refusing a connection it has no room for."""
    return message.removeprefix(ERROR_PREFIX).startswith(TOO_MANY_CONNECTIONS)


_MESSAGE_LINE = (RESULT_MESSAGE + "\n").encode()
_ERROR_PREFIX_BYTES = ERROR_PREFIX.encode()


def response_is_error(raw: bytes) -> bool:
    """Whether one encoded response carries an error message."""
    at = raw.rfind(_MESSAGE_LINE)
    return at >= 0 and raw.startswith(_ERROR_PREFIX_BYTES, at + len(_MESSAGE_LINE))


def encode_relation(relation: Relation, page_rows: int = DEFAULT_PAGE_ROWS) -> bytes:
    """The RELATION_JSON_PAGE ... RELATION_JSON_END part for one relation."""
    page_rows = max(1, page_rows)
    rows = relation.rows
    total_pages = max(1, -(-len(rows) // page_rows))
    columns = [{"name": c.name, "origin": c.origin} for c in relation.columns]
    parts: list[bytes] = []
    for page in range(1, total_pages + 1):
        body = {"type": "relation", "name": relation.name, "page": page,
                "totalPages": total_pages, "columns": columns,
                "rows": rows[(page - 1) * page_rows:page * page_rows]}
        parts.append(f"{PAGE_HEADER} {page}/{total_pages}\n".encode())
        parts.append(_dumps(body))
        parts.append(b"\n")
    parts.append(f"{RELATION_END}\n".encode())
    return b"".join(parts)


def encode_outcome(outcome: Outcome, page_rows: int = DEFAULT_PAGE_ROWS) -> bytes:
    """The complete response to one statement."""
    head = encode_relation(outcome.relation, page_rows) if outcome.relation is not None else b""
    return head + encode_message(outcome.message)


# --------------------------------------------------------------------------
# Decoding responses


@dataclass
class Response:
    """One decoded response.

    ok: the message does not start with `Hadisoana : `. relation: the pages
    merged (None for message-only responses, or when the decoder was told not
    to decode relations; has_relation still says whether there was one).
    raw: the exact bytes of the response, END line included.
    """

    ok: bool
    message: str
    relation: Relation | None
    raw: bytes
    has_relation: bool = False

    def outcome(self) -> Outcome:
        return Outcome(self.ok, self.message, self.relation)


# Decoder states: what the next line must be.
_S_START, _S_PAGE_JSON, _S_AFTER_PAGE, _S_MESSAGE_HEADER, _S_MESSAGE, _S_END = range(6)


class ResponseDecoder:
    """Incremental decoding of a response byte stream into `Response`s.

    decode_relations=False skips JSON parsing (a proxy only needs the raw
    bytes, the message and whether it is an error). A response bigger than
    max_response_bytes raises ProtocolError rather than buffering without
    bound; so does anything that is not the wire format. After a
    ProtocolError the stream is unusable: close the connection.
    """

    def __init__(self, decode_relations: bool = True,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES):
        self.decode_relations = decode_relations
        self.max_response_bytes = max_response_bytes
        self._buffer = bytearray()
        self._scan_from = 0          # no newline in _buffer[_line_start:_scan_from]
        self._line_start = 0         # start of the current line in _buffer
        self._reset_response()

    def _reset_response(self) -> None:
        self._state = _S_START
        self._pages: list[dict] = []
        self._has_relation = False
        self._expected_pages = 0
        self._pages_seen = 0
        self._message = ""

    @property
    def pending(self) -> bool:
        """Whether part of a response is buffered."""
        return len(self._buffer) > 0

    def feed(self, data: bytes) -> list[Response]:
        buffer = self._buffer
        buffer += data
        responses: list[Response] = []
        response_start = 0
        while True:
            newline = buffer.find(b"\n", self._scan_from)
            if newline < 0:
                break
            line = bytes(buffer[self._line_start:newline])
            self._line_start = self._scan_from = newline + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if self._line(line):
                responses.append(self._finish(bytes(buffer[response_start:self._line_start])))
                response_start = self._line_start
        if response_start:
            del buffer[:response_start]
            self._line_start -= response_start
        self._scan_from = len(buffer)
        if len(buffer) > self.max_response_bytes:
            raise ProtocolError("response too large")
        return responses

    def _line(self, line: bytes) -> bool:
        """Consume one line; True when it completed a response."""
        state = self._state
        if state == _S_START or state == _S_AFTER_PAGE:
            if line.startswith(PAGE_HEADER.encode()):
                self._page_header(line)
                self._state = _S_PAGE_JSON
            elif state == _S_AFTER_PAGE and line == RELATION_END.encode():
                if self._pages_seen != self._expected_pages:
                    raise ProtocolError(f"relation ended after page {self._pages_seen} "
                                        f"of {self._expected_pages}")
                self._state = _S_MESSAGE_HEADER
            elif state == _S_START and line == RESULT_MESSAGE.encode():
                self._state = _S_MESSAGE
            else:
                raise ProtocolError(f"unexpected line {line[:80]!r}")
        elif state == _S_PAGE_JSON:
            self._has_relation = True
            if self.decode_relations:
                try:
                    page = _loads_page(line)
                except (ValueError, RecursionError) as error:   # (json: nested too deep)
                    raise ProtocolError(f"bad relation page JSON: {error}") from None
                if not isinstance(page, dict):
                    raise ProtocolError("relation page is not an object")
                self._pages.append(page)
            self._state = _S_AFTER_PAGE
        elif state == _S_MESSAGE_HEADER:
            if line != RESULT_MESSAGE.encode():
                raise ProtocolError(f"expected {RESULT_MESSAGE}, got {line[:80]!r}")
            self._state = _S_MESSAGE
        elif state == _S_MESSAGE:
            self._message = line.decode("utf-8", "replace")
            self._state = _S_END
        elif state == _S_END:
            if line != END.encode():
                raise ProtocolError(f"expected {END}, got {line[:80]!r}")
            return True
        return False

    def _page_header(self, line: bytes) -> None:
        """`RELATION_JSON_PAGE k/n`: pages come numbered 1 to n, in order, n the same on each."""
        try:
            page_text, total_text = line[len(PAGE_HEADER):].strip().split(b"/")
            page, total = int(page_text), int(total_text)
        except ValueError:
            raise ProtocolError(f"bad page header {line[:80]!r}") from None
        if self._expected_pages and total != self._expected_pages:
            raise ProtocolError("page count changed within a relation")
        if page != self._pages_seen + 1 or not 1 <= page <= total:
            raise ProtocolError(f"page {page}/{total} where page {self._pages_seen + 1} "
                                f"was expected")
        self._expected_pages = total
        self._pages_seen = page

    def _finish(self, raw: bytes) -> Response:
        relation = self._merge_pages() if self._has_relation and self.decode_relations else None
        response = Response(ok=not self._message.startswith(ERROR_PREFIX), message=self._message,
                            relation=relation, raw=raw, has_relation=self._has_relation)
        self._reset_response()
        return response

    def _merge_pages(self) -> Relation:
        first = self._pages[0]
        try:
            columns = [Column(c["name"], c.get("origin")) for c in first.get("columns", [])]
            rows: list[list] = []
            for page in self._pages:
                rows.extend(page.get("rows", []))
        except (TypeError, KeyError, AttributeError):
            raise ProtocolError("malformed relation page") from None
        return Relation(first.get("name", ""), columns, rows)


def decode_responses(data: bytes) -> list[Response]:
    """Decode a complete byte string of responses (convenience for tests and tools)."""
    decoder = ResponseDecoder()
    responses = decoder.feed(data)
    if decoder.pending:
        raise ProtocolError("truncated response")
    return responses
