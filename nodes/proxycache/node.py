"""The local proxy cache node: `python -m nodes.proxycache --upstream 127.0.0.1:3949 --port 3951`.

Sits between a client and the load balancer (or a server: same protocol).
One upstream connection per client connection, opened lazily (through the
upstream's Unix socket when `--upstream-socket` names it and it answers,
else over TCP: nodes/runtime/upstream.py `open_upstream`).

The upstream may also be a node run in the same process (a `LocalUpstream`,
reached through an `InProcessUpstream`, nodes/runtime/local_upstream.py):
the one-relay node (nodes/relay) runs the load balancer that way, and
`.status;` then carries the balancer's figures under "balancer".

The seed's strategy:

- READ (`alaivo`, `asehoy`): answered from the cache when an entry for
  (client's current database, normalised statement) is younger than the TTL;
  otherwise forwarded, and a successful response is cached. Errors are never
  cached.
- WRITE and USE (everything else): forwarded, then the whole cache is
  invalidated. With --fine-invalidation only the entries of that database
  that read the written object are dropped (entries reading a view count as
  reading everything; USE drops nothing since keys carry the database).
- A read another connection sends within --settle-ms of a write (replication
  lag: the server answering it may not have the write yet) is answered but
  not cached (nodes/proxycache/cache.py), so no connection, the writer included, is
  later served an answer older than a write acknowledged through this proxy.

The client's current database is tracked from successful `ampiasao` replies
and from dropping it. If the upstream connection breaks, the client gets a
`Hadisoana : ...` error (a read is retried once on a fresh connection first,
a write never is: its outcome is unknown, and its error says so unless it
was never sent); the next statement reconnects and
replays `ampiasao` so the session keeps its database. A statement not sent
yet waits up to --upstream-patience seconds (default 3) for an upstream that
refuses connections (a balancer being restarted) before that error.

`.ping;` and `.status;` are answered here, never forwarded; `.status;`
carries the cache counters (hits, misses, evictions, invalidations, ...).

Accounts (docs/SECURITY.md): a client's `.login` is forwarded in its turn
and, accepted, replayed first on every new upstream connection (before
`ampiasao`). From then on the connection's cache keys carry the account,
so one account's answer is never served to another, and every answer it
caches keeps the servers' `.rights;` answer asked right before it (in the
same write, so the read ran under rights at least that new); it is cached
only when every server reported the same generation (none lagging behind
a change). A hit for an account is served only after a `.rights;` round
trip finds that answer unchanged: a grant revoked through any path (the
teacher on the balancer, another proxy) changes it, and the hit is then
dropped, with every entry made under the old rights, and read again
upstream, where the server checks the rights itself. A read whose
`.rights;` shows the servers disagreeing (a grant or revoke still
replicating) is answered but not cached: the balancer, which has just seen
those generations, sent it to a server holding the newest rights
(nodes/balancer/backend_pool.py). That round trip is
what an account's hit costs (bench/accounts_bench.py); a
connection that never logged in (accounts off) keeps the plain hit.

Pipelining: a client may send statements ahead (a `-f` script, `executemany`);
the proxy forwards them ahead too, on its one upstream connection, in
order: each statement is sent once the one before it has been sent (so a
reconnection is made once and nothing overtakes), and the answers come back
in order. While statements of the connection are in flight the cache is
neither read (an earlier write or `ampiasao` may change the answer) nor
filled; a read is sent again after a broken connection only when nothing
was sent behind it. A lost `ampiasao` (sent, unanswered) counts as done for
the database replayed on the next upstream connection: the statements after
it were written for that database.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import re
import ssl
import time
from collections.abc import Awaitable
from typing import Any

from engine.errors import ERROR_PREFIX
from engine.language.script import normalise_statement
from nodes.protocol import (
    ADMIN_LOGIN,
    ADMIN_RIGHTS,
    DEFAULT_MAX_REQUEST_BYTES,
    AuthGuard,
    Request,
    Response,
    add_auth_arguments,
    add_login_arguments,
    decode_rights,
    encode_error,
    login_arguments,
    node_auth_guard,
    node_login_gate,
    renewed_login,
    statement_bytes,
)
from nodes.proxycache.cache import ResponseCache
from nodes.runtime.admission import connection_limits
from nodes.runtime.local_upstream import InProcessUpstream, LocalUpstream
from nodes.runtime.node_process import (
    node_argument_parser,
    node_tls,
    parse_address,
    run_node,
    setup_logging,
)
from nodes.runtime.serving import (
    DEFAULT_IDLE_TIMEOUT_S,
    ClientHandler,
    ConnectionStats,
    PendingAnswer,
    admin_response,
    run_server,
)
from nodes.runtime.upstream import WRITE_OUTCOME_UNKNOWN, NotSent, UpstreamConnection, UpstreamError

KIND = "proxycache"
RIGHTS_REQUEST = b".rights;"
# Replication is a few ms behind at rest, but p99 reached ~250 ms with a class
# of ten writing at once on two cores; a wide margin costs little: only reads
# sent within it of another connection's write go uncached.
DEFAULT_SETTLE_MS = 1000.0
READ, USE, WRITE = "read", "use", "write"

_FIRST_WORD = re.compile(r"[^\W\d]\w*")
_USE_REPLY = re.compile(r"^Ny tahiry : (.+) dia miasa ankehitriny$")
_USE_STATEMENT = re.compile(r"^ampiasao\s+([^\W\d]\w*)$", re.IGNORECASE)
# Statements one client connection may have in flight through the proxy.
PIPELINE_WINDOW = 64
# Request texts whose (normal form, kind) the proxy remembers (the cache
# hit path then does no text work); forgotten all at once when full.
MAX_KNOWN_TEXTS = 4096
_DROP_DATABASE = re.compile(r"^ravao\s+ny\s+tahiry\s+([^\W\d]\w*)\s*$", re.IGNORECASE)
_DATABASE_DDL = re.compile(r"^(?:manamboara|ravao\s+ny)\s+tahiry\s+([^\W\d]\w*)\s*$",
                           re.IGNORECASE)
# The first words (lower case) of every statement whose normal form the proxy
# reads: reads (cache keys), `ampiasao` and a database's create or drop
# (matched above). Any other first word starts a plain write.
_WORDS_NEEDING_NORMAL_FORM = frozenset({"alaivo", "asehoy", "ampiasao", "manamboara", "ravao"})


def statement_kind(normal_text: str) -> str:
    """READ / USE / WRITE from the first keyword (cheap: no parse on the hit path)."""
    match = _FIRST_WORD.match(normal_text)
    word = match.group().lower() if match else ""
    if word in ("alaivo", "asehoy"):
        return READ
    if word == "ampiasao":
        return USE
    return WRITE


class LoginRefusedUpstream(UpstreamError):
    """The session's login was refused on a new upstream connection (password changed, dropped)."""


def uniform_rights(response: Response) -> str | None:
    """The answer to `.rights;` if every server gave the same generation (cacheable), else None."""
    if not response.ok:
        return None
    generations = decode_rights(response.message)
    if not generations or len(set(generations.values())) != 1:
        return None
    return response.message


class FineInvalidation:
    """What a statement reads or writes, for --fine-invalidation (parses; misses and writes only)."""

    def __init__(self, view_ttl_s: float):
        from engine.language.parser import StatementParser

        self.parser = StatementParser()
        self.view_ttl_s = view_ttl_s
        self._views: dict[str, tuple[float, frozenset[str]]] = {}

    def classify(self, text: str):
        from engine.language.classify import classify

        try:
            statement = self.parser.parse(text)
        except Exception:
            return None
        return classify(statement) if statement is not None else None

    def known_views(self, database: str | None) -> frozenset[str] | None:
        cached = self._views.get(database or "")
        if cached is not None and time.monotonic() - cached[0] < self.view_ttl_s:
            return cached[1]
        return None

    def remember_views(self, database: str | None, response: Response) -> None:
        if response.ok and response.relation is not None:
            names = frozenset(str(row[0]) for row in response.relation.rows if row)
            self._views[database or ""] = (time.monotonic(), names)

    def forget_views(self, database: str | None) -> None:
        self._views.pop(database or "", None)


class ProxyCache:
    """The proxy node: a shared cache and one `ProxySession` per client connection."""

    def __init__(self, node_id: str, upstream: tuple[str, int] | LocalUpstream,
                 cache: ResponseCache,
                 logger: logging.Logger, *, fine_invalidation: bool = False,
                 request_timeout: float = 60.0, idle_timeout: float | None = 600.0,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 auth: AuthGuard | None = None, upstream_patience: float = 3.0,
                 upstream_tls: ssl.SSLContext | None = None,
                 upstream_socket: str | None = None):
        self.node_id = node_id
        self.upstream_tls = upstream_tls   # TLS to the upstream (nodes/protocol/tls.py)
        # The upstream's socket file on this machine, tried before its TCP port
        # (nodes/runtime/upstream.py `open_upstream`).
        self.upstream_socket = upstream_socket
        # How long a statement not yet sent waits for the upstream to come back.
        self.upstream_patience = upstream_patience
        self.auth = auth  # shared secret: required of clients, presented upstream
        # host:port of the upstream node, or the balancer run in this process.
        self.upstream = upstream
        self.cache = cache
        self.logger = logger
        self.fine = FineInvalidation(cache.ttl_s) if fine_invalidation else None
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.max_request_bytes = max_request_bytes
        self.stats = ConnectionStats()
        self.upstream_errors = 0
        # read text -> (normalised text, READ): both are pure functions of the
        # text, so a repeated read (a cache hit) skips computing them.
        self.known_texts: dict[str, tuple[str | None, str]] = {}

    def text_facts(self, text: str) -> tuple[str | None, str]:
        """(normalised text, READ / USE / WRITE) of a request's text; a read's remembered.

        Only reads: a cache hit is a read sent again, while writes are mostly
        sent once (each insert its own values); remembered, they would flush
        the reads' entries every MAX_KNOWN_TEXTS writes.

        A plain write (not a database's create or drop) without fine
        invalidation gets None instead of its normal form, which nothing
        reads then: what normalising an insert with strings cost (~5 µs) was
        a third of the proxy's Python work per write. Its kind comes from
        the text's first word, the normal form's too (the framer strips the
        text; comments and whitespace runs come only after a word).
        """
        facts = self.known_texts.get(text)
        if facts is None:
            if self.fine is None:
                first = _FIRST_WORD.match(text)
                if first is not None and first.group().lower() not in _WORDS_NEEDING_NORMAL_FORM:
                    return None, WRITE
            normal = normalise_statement(text)
            facts = (normal, statement_kind(normal))
            if facts[1] == READ:
                if len(self.known_texts) >= MAX_KNOWN_TEXTS:
                    self.known_texts.clear()
                self.known_texts[text] = facts
        return facts

    def status(self) -> dict:
        upstream = self.upstream
        status = {**self.stats.as_dict(), **self.cache.status(),
                  "upstream": upstream.name if isinstance(upstream, LocalUpstream)
                  else f"{upstream[0]}:{upstream[1]}",
                  "upstream_socket": self.upstream_socket,
                  "upstream_errors": self.upstream_errors,
                  "fine_invalidation": self.fine is not None}
        if isinstance(upstream, LocalUpstream):
            status["balancer"] = upstream.status()
        return status

    def open_client(self) -> ClientHandler:
        """A new client connection: its own database and upstream connection."""
        self.stats.open_connections += 1
        self.stats.total_connections += 1
        upstream = self.upstream
        connection: UpstreamConnection | InProcessUpstream
        if isinstance(upstream, LocalUpstream):
            connection = InProcessUpstream(upstream, decode_relations=self.fine is not None,
                                           max_request_bytes=self.max_request_bytes)
        else:
            connection = UpstreamConnection(
                *upstream, request_timeout=self.request_timeout,
                decode_relations=self.fine is not None,
                secret=self.auth.secret if self.auth is not None else None, tls=self.upstream_tls,
                unix_socket=self.upstream_socket)
        session = ProxySession(self, connection)

        def closed():
            self.stats.open_connections -= 1
            return session.upstream.close()

        return ClientHandler(session.handle, closed, self.idle_timeout, window=PIPELINE_WINDOW)


class ProxySession:
    """One client connection: its current database and its upstream connection."""

    def __init__(self, proxy: ProxyCache, upstream: UpstreamConnection | InProcessUpstream):
        self.proxy = proxy
        self.cache = proxy.cache
        self.upstream = upstream
        self.database: str | None = None
        # Who this connection is to the cache's settle rule; a new upstream
        # connection is a new balancer session that does not know the old
        # one's writes, so it gets a new identity.
        self.writer = object()
        # Pipelining: statements forwarded and not answered yet, and the
        # "sent" signal of the latest one (the next one is sent after it).
        self.in_flight = 0
        self._sent: asyncio.Future | _SentAtOnce | None = None
        # The client's accepted `.login` (replayed on each new upstream
        # connection) and its account, which every cache key then carries.
        self.login: bytes | None = None
        self.account: str | None = None

    def _key(self, normal: str):
        if self.account is None:
            return (self.database, normal)
        return (self.database, normal, self.account)

    def handle(self, request: Request) -> bytes | Awaitable[bytes]:
        """Answer one request: bytes when the answer is ready (admin, cache hit).

        Returning bytes lets the connection write a cache hit at once, with no
        task to schedule: that is most of what a hit costs.
        """
        if request.admin is not None:
            if request.admin == ADMIN_LOGIN or request.admin == ADMIN_RIGHTS:
                turn = self._take_turn()
                self.in_flight += 1
                return self._admin(request, turn)
            return admin_response(request, self.proxy.node_id, KIND, self.proxy.status)
        normal, kind = self.proxy.text_facts(request.text)
        alone = not self.in_flight
        if normal is None:   # a plain write
            if alone and self.upstream.usable:
                fast = self._fast_write(request, None)
                if fast is not None:
                    return fast
            turn = self._take_turn()
            self.in_flight += 1
            return self._write(request, None, WRITE, turn)
        if kind == READ and alone:
            account = self.account
            entry = self.cache.get_entry((self.database, normal) if account is None
                                         else (self.database, normal, account))
            if entry is not None:
                if entry.rights is None:
                    return entry.value
                return self._validated_hit(request, normal, entry.value, entry.rights)
            if account is None and self.proxy.fine is None and self.upstream.usable:
                return self._fast_read(request, normal)
        elif kind == WRITE and alone and self.upstream.usable:
            fast = self._fast_write(request, normal)
            if fast is not None:
                return fast
        # Taken now, in request order: the statements are sent in that order.
        turn = self._take_turn()
        self.in_flight += 1
        if kind == READ:
            if not alone:   # (behind another statement: no lookup, forwarded all the same)
                self.cache.stats.misses += 1
            return self._read(request, normal, turn, cacheable=alone)
        return self._write(request, normal, kind, turn)

    async def _admin(self, request: Request, turn) -> bytes:
        """`.login` (accepted: the session's account from now on) or `.rights;`, forwarded in turn."""
        try:
            response = await self._forward(request.wire(), retry=False, turn=turn)
        except UpstreamError as error:
            return encode_error(str(error))
        finally:
            self.in_flight -= 1
        if request.admin == ADMIN_LOGIN and response.ok:
            try:
                account = login_arguments(request)[0]
            except ValueError:   # the upstream took it: never, but then no cache for it
                account = ""
            if self.account is not None and self.account != account:
                self.database = None   # another account starts afresh, as on the server
            self.account = account
            self.login = request.wire()
        return response.raw

    def _validated_hit(self, request: Request, normal: str, value: bytes,
                       rights: str) -> Awaitable[bytes]:
        """An account's cache hit: served once `.rights;` upstream still gives `rights`."""
        turn = self._take_turn()
        self.in_flight += 1
        return self._validate(request, normal, value, rights, turn)

    async def _validate(self, request: Request, normal: str, value: bytes, rights: str,
                        turn) -> bytes:
        _, sent_signal = turn   # alone: nothing before it is in flight
        response = None
        if self.upstream.usable:
            try:
                response = await self.upstream.send(RIGHTS_REQUEST)
            except UpstreamError:
                self.proxy.upstream_errors += 1
        if response is not None and response.ok and response.message == rights:
            self.in_flight -= 1
            if not sent_signal.done():
                sent_signal.set_result(None)
            return value
        if response is not None and response.ok:
            # The rights changed (a grant, a revoke, an account, anywhere):
            # nothing read under the old ones is served again.
            self.cache.drop_rights_other_than(response.message)
        # Read afresh in this statement's turn: the server checks the rights.
        return await self._read(request, normal, (None, sent_signal), cacheable=True)

    def _take_turn(self) -> tuple[asyncio.Future | _SentAtOnce | None, asyncio.Future]:
        """(the previous statement's "sent" signal, this one's)."""
        previous, self._sent = self._sent, asyncio.get_running_loop().create_future()
        return previous, self._sent

    async def _write(self, request: Request, normal: str | None, kind: str, turn) -> bytes:
        try:
            response = await self._forward(request.wire(), retry=False, turn=turn)
        except UpstreamError as error:
            return self._write_done(kind, request, normal, None, error)
        finally:
            self.in_flight -= 1
        return self._write_done(kind, request, normal, response, None)

    def _write_done(self, kind: str, request: Request, normal: str | None,
                    response: Response | None, error: UpstreamError | None) -> bytes:
        """A forwarded write's answer (`response`), or the error that left its outcome unknown.

        `normal`: None for a plain write (`ProxyCache.text_facts`).
        """
        # Every earlier statement is answered: this is the database it ran in.
        self._note_write(kind, normal, self.database)
        if response is None:
            self._invalidate_after(kind, normal, None)  # the outcome is unknown
            if kind == USE and normal is not None:
                used = _USE_STATEMENT.match(normal)
                if used:
                    self.database = used.group(1)   # replayed on the next connection
            elif not isinstance(error, NotSent):
                # Sent, and the connection broke before its answer: it may have run.
                # "Failed" must mean "not applied" (as the balancer says it).
                return encode_error(f"{error}: {WRITE_OUTCOME_UNKNOWN}")
            return encode_error(str(error))
        self._track_database(kind, normal, response)
        self._invalidate_after(kind, normal, response)
        if response.ok and self.account:
            # The account's own new password: the old one logs in nowhere now.
            self.login = renewed_login(request.text, self.account) or self.login
        return response.raw

    def _fast_write(self, request: Request, normal: str | None) -> PendingAnswer | None:
        """A write (not `ampiasao`) alone on a usable connection: sent right now; None if
        nothing could be sent (the connection broke since: `_write` then waits for a new one).

        What `_write` does, without its task or futures: the answer comes from
        the upstream connection's read callback. Once sent, a write is never
        sent again (its outcome is then unknown), exactly as in `_write`.
        """
        answer = PendingAnswer()   # given from the upstream connection's read callback
        sending, unsent = True, False

        def answered(response: Response | None, error: UpstreamError | None) -> None:
            nonlocal unsent
            if response is None and sending:
                unsent = True   # handed back at once: nothing was sent
                return
            self.in_flight -= 1
            if response is None:
                self.proxy.upstream_errors += 1
            answer.give(self._write_done(WRITE, request, normal, response, error))

        # The one before is sent (this is alone), and this one is sent now:
        # the next statement may be, so its signal needs no future.
        previous_signal, self._sent = self._sent, _SentAtOnce()
        self.in_flight += 1
        self.upstream.send_call(request.wire(), answered)
        sending = False
        if unsent:
            self.in_flight -= 1
            self.proxy.upstream_errors += 1
            self._sent = previous_signal
            return None
        return answer

    def _fast_read(self, request: Request, normal: str) -> PendingAnswer:
        """A read the cache could not answer, alone on a usable connection: sent right now.

        (Never for an account: its reads take `_read`, `.rights;` first.)

        What `_read` does, without its task: the answer comes from the
        upstream connection's read callback. A broken connection takes the
        slow path's one retry (`_read_again`) if nothing was sent behind it.
        """
        key = (self.database, normal)
        generation = self.cache.generation
        fetched_at = self.cache.clock()
        # The one before is sent (this is alone), and this one is sent now:
        # the next statement may be, so its signal needs no future.
        sent_signal = self._sent = _SentAtOnce()
        self.in_flight += 1
        answer = PendingAnswer()   # given from the upstream connection's read callback
        data = request.wire()

        def answered(response: Response | None, error: UpstreamError | None) -> None:
            if response is not None:
                self.in_flight -= 1
                raw = self._read_done(key, response, generation, fetched_at, cacheable=True)
            else:
                self.proxy.upstream_errors += 1
                if self._sent is sent_signal:  # nothing sent behind it: once more
                    again = asyncio.ensure_future(
                        self._read_again(data, key, generation, fetched_at))
                    again.add_done_callback(functools.partial(_pass_on, answer))
                    return
                self.in_flight -= 1
                raw = encode_error(str(error))
            answer.give(raw)

        self.upstream.send_call(data, answered)
        return answer

    async def _read_again(self, data: bytes, key, generation: int, fetched_at: float) -> bytes:
        """The fast read's retry after a broken connection: `_read` from that point."""
        try:
            response = await self._forward(data, retry=False, turn=self._take_turn())
        except UpstreamError as error:
            return encode_error(str(error))
        finally:
            self.in_flight -= 1
        return self._read_done(key, response, generation, fetched_at, cacheable=True)

    def _read_done(self, key, response: Response, generation: int, fetched_at: float,
                   cacheable: bool, rights: str | None = None) -> bytes:
        """A forwarded read's answer (no fine invalidation): cached if a success sent alone."""
        if response.ok and cacheable:
            # The identity after the request: a reconnection on the way is a
            # session that may not know this connection's earlier writes.
            self.cache.put(key, response.raw, generation=generation, fetched_at=fetched_at,
                           reader=self.writer, rights=rights)
        return response.raw

    async def _read(self, request: Request, normal: str, turn, cacheable: bool) -> bytes:
        """A read the cache could not answer: forward it, cache a success (if sent alone).

        For an account, `.rights;` goes right before it in the same write;
        the answer is cached with it, and only if every server agrees.
        """
        key = self._key(normal)
        account = self.account
        generation = self.cache.generation
        fetched_at = self.cache.clock()
        rights = None
        try:
            if account is None:
                response = await self._forward(request.wire(), retry=True, turn=turn)
            else:
                # The balancer sends the read to a server holding the newest
                # rights it has just seen; while the servers disagree (a grant
                # or a revoke replicating: milliseconds), it is not cached.
                checked, response = await self._forward(RIGHTS_REQUEST + request.wire(),
                                                         retry=True, turn=turn, count=2)
                rights = uniform_rights(checked)
                cacheable = cacheable and rights is not None and self.account == account
        except UpstreamError as error:
            return encode_error(str(error))
        finally:
            self.in_flight -= 1
        if self.proxy.fine is None:
            return self._read_done(key, response, generation, fetched_at, cacheable, rights)
        if response.ok and cacheable:
            reader = self.writer   # the identity after the request (see _read_done)
            tags, opaque = await self._read_tags(request.text)
            self.cache.put(key, response.raw, tags=tags, opaque=opaque, generation=generation,
                           fetched_at=fetched_at, reader=reader, rights=rights)
        return response.raw

    def _note_write(self, kind: str, normal: str | None, database: str | None) -> None:
        """Tell the cache's settle rule that this connection wrote (or may have)."""
        if kind != WRITE:
            return
        self.cache.note_write(database, self.writer)
        if normal is None:   # a plain write: no database created or dropped
            return
        named = _DATABASE_DDL.match(normal)
        if named and named.group(1) != database:
            self.cache.note_write(named.group(1), self.writer)

    async def _forward(self, data: bytes, retry: bool, turn, count: int = 1) -> Any:
        """Send one statement upstream in its turn (replaying `ampiasao` on a new connection).

        Until the statement itself is sent, failures (upstream restarting,
        a connection its peer already closed) are retried for up to
        `upstream_patience` seconds: nothing was sent, so this is as safe
        for a write as for a read. Once sent, only a read is sent again
        (once, and only if no statement was sent behind it); a write's
        outcome is then unknown. `count`: requests in `data` (their
        responses, a list, are returned when more than one).
        """
        previous, sent_signal = turn
        while True:
            try:
                if isinstance(previous, asyncio.Future) and not previous.done():
                    await asyncio.shield(previous)   # never cancel another statement's signal
                answer = await self._send(data, count)
            except (LoginRefusedUpstream, NotSent):
                raise
            except UpstreamError as error:   # no usable connection: the statement was not sent
                raise NotSent(str(error)) from None
            finally:
                if not sent_signal.done():
                    sent_signal.set_result(None)   # the next statement may be sent
            try:
                return await answer
            except UpstreamError:
                self.proxy.upstream_errors += 1
                if not retry or self._sent is not sent_signal:
                    raise   # a write, or statements were sent behind this read
                retry = False
                previous, sent_signal = self._take_turn()

    async def _send(self, data: bytes, count: int = 1):
        """Write one statement on a usable connection (waiting for one, bounded); its answer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.proxy.upstream_patience
        delay = 0.02
        while True:
            try:
                if not self.upstream.usable:
                    await self.upstream.close()
                    self.writer = object()
                    await self.upstream.connect()
                    await self._replay_login()
                    await self._replay_database()
            except LoginRefusedUpstream:
                raise
            except UpstreamError:
                self.proxy.upstream_errors += 1
                if loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.25)
                continue
            return self.upstream.send(data) if count == 1 else self.upstream.send_many(data, count)

    async def _replay_login(self) -> None:
        """The session's login, first on a new upstream connection; refused: LoginRefusedUpstream."""
        if self.login is None:
            return
        response = await self.upstream.request(self.login)
        if not response.ok:
            await self.upstream.close()
            raise LoginRefusedUpstream(response.message.removeprefix(ERROR_PREFIX))

    async def _replay_database(self) -> None:
        if self.database is None:
            return
        response = await self.upstream.request(statement_bytes(f"ampiasao {self.database}"))
        if not response.ok:
            self.proxy.logger.info("database %s is gone upstream: %s", self.database, response.message)
            self.database = None

    def _track_database(self, kind: str, normal: str | None, response: Response) -> None:
        if not response.ok or normal is None:   # (None: a plain write)
            return
        if kind == USE:
            match = _USE_REPLY.match(response.message)
            if match:
                self.database = match.group(1)
        elif self.database is not None:
            match = _DROP_DATABASE.match(normal)
            if match and match.group(1) == self.database:
                self.database = None

    def _invalidate_after(self, kind: str, normal: str | None, response: Response | None) -> None:
        fine = self.proxy.fine
        if fine is None or normal is None:   # (None: only without fine invalidation)
            self.cache.invalidate_all()
            return
        if kind == USE:
            return  # keys carry the database: nothing read elsewhere changed
        statement_class = fine.classify(normal)
        if statement_class is None:
            # Not even parsable: nothing was written; stay conservative anyway.
            self.cache.invalidate_database(self.database)
        elif statement_class.kind == "database":
            self.cache.invalidate_database(statement_class.database)
            fine.forget_views(statement_class.database)
        elif statement_class.objects:
            self.cache.invalidate_tables(self.database, statement_class.objects[:1])
            fine.forget_views(self.database)
        else:
            self.cache.invalidate_database(self.database)

    async def _read_tags(self, text: str) -> tuple[tuple[str, ...], bool]:
        """Names a cached read depends on; opaque if it reads a view (or cannot tell)."""
        fine = self.proxy.fine
        if fine is None:
            return (), False
        statement_class = fine.classify(text)
        if statement_class is None:
            return (), True
        names = statement_class.objects
        if not names:
            # `asehoy ny tabilao;` names no object but lists them all: opaque,
            # so that creating or dropping any of them drops it.
            first = _FIRST_WORD.match(text.lstrip())
            return (), first is not None and first.group().lower() == "asehoy"
        views = fine.known_views(self.database)
        if views is None:
            try:
                fine.remember_views(self.database, await self.upstream.request(
                    statement_bytes("asehoy ny jery")))
            except UpstreamError:
                return names, True
            views = fine.known_views(self.database)
        return names, views is None or not views.isdisjoint(names)


class _SentAtOnce:
    """The "sent" signal of a statement written as soon as it came: done from the start.

    One per statement: its identity says whether it is still the latest.
    """

    __slots__ = ()

    def done(self) -> bool:
        return True


def _pass_on(answer: PendingAnswer, task: asyncio.Future) -> None:
    """The result of `task` (a coroutine that never raises but on cancellation) into `answer`."""
    if task.cancelled():
        answer.cancel()
    else:
        answer.give(task.result())


DEFAULT_UPSTREAM = "127.0.0.1:3949"


def build_argument_parser(description: str = "Tahiry local proxy cache",
                          upstream: bool = True) -> argparse.ArgumentParser:
    """The proxy cache's options (`upstream`: with `--upstream`; the one relay has none)."""
    parser = node_argument_parser(description, default_port=3951)
    if upstream:
        parser.add_argument("--upstream", default=DEFAULT_UPSTREAM,
                            help="host:port of the load balancer (or a server)")
        parser.add_argument("--upstream-socket", default=None, metavar="PATH",
                            help="the upstream's Unix socket on this machine: connected to "
                                 "first, --upstream when that fails (not with TLS)")
    parser.add_argument("--ttl-ms", type=float, default=3000, help="how long a READ response stays cached")
    parser.add_argument("--max-entries", type=int, default=200, help="LRU bound on cached responses")
    parser.add_argument("--max-bytes", type=int, default=64 << 20, help="bound on cached bytes")
    parser.add_argument("--settle-ms", type=float, default=DEFAULT_SETTLE_MS,
                        help="a read sent this soon after another connection's write is not "
                             "cached (replication lag behind a balancer); 0 with one server")
    parser.add_argument("--fine-invalidation", action="store_true",
                        help="on a write, drop only entries that read the written object")
    parser.add_argument("--request-timeout", type=float, default=60.0)
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT_S)
    parser.add_argument("--max-request-bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES)
    parser.add_argument("--upstream-patience", type=float, default=3.0,
                        help="seconds a statement not yet sent waits for the upstream to come back")
    add_auth_arguments(parser)
    add_login_arguments(parser)
    return parser


def build_proxy(args: argparse.Namespace, upstream: tuple[str, int] | LocalUpstream,
                logger: logging.Logger, auth: AuthGuard,
                upstream_tls: ssl.SSLContext | None) -> ProxyCache:
    """The proxy from `build_argument_parser`'s options; ValueError if one is bad."""
    if args.settle_ms < 0:
        raise ValueError("--settle-ms must not be negative")
    cache = ResponseCache(args.ttl_ms, args.max_entries, args.max_bytes, settle_ms=args.settle_ms)
    proxy = ProxyCache(args.id, upstream, cache, logger,
                       fine_invalidation=args.fine_invalidation,
                       request_timeout=args.request_timeout,
                       idle_timeout=args.idle_timeout or None,
                       max_request_bytes=args.max_request_bytes, auth=auth,
                       upstream_patience=args.upstream_patience, upstream_tls=upstream_tls,
                       upstream_socket=getattr(args, "upstream_socket", None))
    proxy.stats.login = node_login_gate(args, logger)
    return proxy


def main(argv: list[str] | None = None) -> None:
    parser = build_argument_parser()
    args = parser.parse_args(argv)
    try:
        upstream = parse_address(args.upstream)
    except ValueError as error:
        parser.error(str(error))
    logger = setup_logging(args.id, args.log_file, args.log_level, __name__)
    auth = node_auth_guard(args, logger)
    tls = node_tls(args, "proxycache")
    try:
        proxy = build_proxy(args, upstream, logger, auth, tls.client)
    except ValueError as error:
        parser.error(str(error))
    logger.info("upstream %s:%d%s, ttl %s ms, max %d entries", *upstream,
                f" (unix socket {args.upstream_socket})" if args.upstream_socket else "",
                args.ttl_ms, args.max_entries)
    run_node(run_server(proxy.open_client, args.host, args.port, logger, proxy.stats,
                        max_request_bytes=args.max_request_bytes, auth=auth,
                        port_file=args.port_file, limits=connection_limits(args),
                        ssl_context=tls.server, unix_socket=args.unix_socket), logger)
