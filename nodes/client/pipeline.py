"""Statements sent ahead on one connection: a bounded window, answers in order.

A script (`-f`, stdin) or the driver's `executemany` does not wait for each
answer before sending the next statement: up to `WINDOW` statements are in
flight on the connection, and their answers, which a node sends one per
statement in request order, are matched to them in that order. The server
can then commit a connection's pipelined writes in one group commit, and
the round trip is paid once per window instead of once per statement.

One loop drives it with `select`: it sends while the socket takes bytes and
reads answers whenever they arrive, so neither side can block the other
(a node that stops reading because its answers are not read would
otherwise deadlock a client still busy sending). It takes steps from a
`StepSource` only when one is ready (a pipe that has nothing yet does not
stop answers from being shown), and hands results back in step order.

When the connection is lost, a read (or `ampiasao`) sent and not answered
is sent again (once) on the next connection, unless it was lost for
taking too long (`NoAnswer`: the node may still be at it); every other statement sent and not answered
gets "outcome unknown" (the message of the `ConnectionLost`), and is never
sent again; statements not sent yet go on a new connection, which the
runner opens with the session's database replayed. A connection the node
closed while nothing was in flight (a script fed slowly, past the node's
idle timeout) is replaced before anything is sent on it.
"""

from __future__ import annotations

import select
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, cast

from engine.errors import ERROR_PREFIX
from engine.evaluation.outcome import Outcome
from engine.language.script_source import PENDING
from nodes.client.connection import ConnectionLost, NoAnswer, ServerConnection, request_bytes

WINDOW = 64               # statements in flight on one connection


@dataclass
class Step:
    """One item of a run: a statement to send, or a place-holder the caller handles itself.

    statement: the text to run (None: nothing is sent; the step comes back
    in order with no outcome). tag: the caller's own (the script `Piece`,
    the client command, the parameter set).
    """

    statement: str | None
    tag: object = None


@dataclass
class StepResult:
    """What became of one step: its outcome (None: nothing was run), or that it was lost."""

    step: Step
    outcome: Outcome | None
    lost: bool = False       # the connection broke after it was sent: outcome unknown


class StepSource(Protocol):
    def poll(self, block: bool) -> Step | None | object:
        """The next step; None at the end; PENDING when not `block` and none is ready."""

    def fileno(self) -> int | None:
        """What to wait on after PENDING (None: poll never returns PENDING)."""


class IterSteps:
    """A `StepSource` over an iterator of steps (always ready); `stop()` ends it early."""

    def __init__(self, steps):
        self._steps = iter(steps)
        self.stopped = False

    def poll(self, block: bool = True) -> Step | None:
        if self.stopped:
            return None
        step = next(self._steps, None)
        if step is None:
            self.stopped = True
        return step

    def fileno(self) -> None:
        return None

    def stop(self) -> None:
        self.stopped = True


class PipelineHost(Protocol):
    """What the pipeline needs from its runner (nodes/client/runners.py RemoteRunner)."""

    timeout: float

    def open_connection(self) -> ServerConnection:
        """The connection to send on, opened (database replayed) if there is none."""

    def check(self, statement: str) -> Outcome | None:
        """An outcome decided without the node (a statement that never ends), or None."""

    def answered(self, statement: str, outcome: Outcome) -> None:
        """A statement's answer, in order (the runner tracks the database)."""

    def lost(self, statements: list[str]) -> None:
        """The connection broke; these statements were sent and not answered."""

    def retryable(self, statement: str) -> bool:
        """Whether a statement sent and not answered may be sent again (a read)."""


class _Entry:
    __slots__ = ("step", "statement", "wire", "result", "start", "resent")

    def __init__(self, step: Step, statement: str, wire: bytes, result: StepResult | None):
        self.step = step
        self.statement = statement  # the step's statement, to send ("": decided locally)
        self.wire = wire            # its bytes to send (b"": decided locally)
        self.result = result        # known once answered, lost or decided
        self.start = -1             # offset of its first byte in the connection's stream
        self.resent = False         # sent again after a lost connection (a read)


class Pipeline:
    """Runs steps on a runner's connection with up to `window` statements in flight."""

    def __init__(self, host: PipelineHost, window: int = WINDOW):
        self.host = host
        self.window = max(1, window)

    def run(self, source: StepSource) -> Iterator[StepResult]:
        """Each step's result, in step order, as soon as it and those before it are known."""
        return _Run(self.host, self.window, source).results()


class _Run:
    """The state of one `Pipeline.run`."""

    def __init__(self, host: PipelineHost, window: int, source: StepSource):
        self.host = host
        self.window = window
        self.source = source
        self.queue: deque[_Entry] = deque()      # every step not handed back yet, in order
        self.unsent: deque[_Entry] = deque()     # statements not put on a connection yet
        self.in_flight: deque[_Entry] = deque()  # put on the connection, awaiting answers
        self.out = bytearray()                   # bytes not handed to the socket yet
        self.queued = 0                          # bytes put on this connection so far
        self.sent = 0                            # of which handed to the socket
        self.connection: ServerConnection | None = None
        self.exhausted = False
        self.last_progress = time.monotonic()

    def results(self) -> Iterator[StepResult]:
        queue = self.queue
        while True:
            while queue:
                result = queue[0].result
                if result is None:
                    break
                queue.popleft()
                yield result
            self._take_steps()
            if not queue:
                if self.exhausted:
                    return
                continue
            if queue[0].result is not None:
                continue  # decided locally: hand it back before waiting on anything
            self._put_unsent()
            if not self.in_flight:
                continue
            connection = self.connection
            assert connection is not None  # statements are in flight only on an open connection
            try:
                self._exchange(connection)
            except ConnectionLost as lost:
                self._lose(connection, lost)

    def _take_steps(self) -> None:
        """Take the steps that are ready while the window has room (block only when idle)."""
        while not self.exhausted and len(self.in_flight) + len(self.unsent) < self.window \
                and len(self.queue) < 2 * self.window:
            step = self.source.poll(not self.queue)
            if step is PENDING:
                return
            if step is None:
                self.exhausted = True
                return
            entry = self._entry(cast(Step, step))   # neither PENDING nor None: a Step
            self.queue.append(entry)
            if entry.result is None:
                self.unsent.append(entry)

    def _entry(self, step: Step) -> _Entry:
        statement = step.statement
        if statement is None:
            return _Entry(step, "", b"", StepResult(step, None))
        decided = self.host.check(statement)
        if decided is not None:
            return _Entry(step, "", b"", StepResult(step, decided))
        return _Entry(step, statement, request_bytes(statement), None)

    def _put_unsent(self) -> None:
        """Queue the bytes of statements not sent yet (on a new connection if needed)."""
        if not self.unsent:
            return
        if self.connection is not None and not self.in_flight \
                and self.connection.closed_by_peer():
            # Idle and closed by the node (its idle timeout, a restart): nothing
            # was in flight, so nothing is lost; the runner opens a new one.
            self.connection = None
        if self.connection is None:
            try:
                self.connection = self.host.open_connection()
            except ConnectionLost as lost:
                # Lost while opening (the database replay): this statement was
                # not sent; it fails, the next one tries a new connection.
                entry = self.unsent.popleft()
                entry.result = StepResult(entry.step, Outcome.failure(ERROR_PREFIX + str(lost)))
                return
            self.queued = self.sent = 0
            self.last_progress = time.monotonic()
        while self.unsent:
            entry = self.unsent.popleft()
            entry.start = self.queued
            self.queued += len(entry.wire)
            self.out += entry.wire
            self.in_flight.append(entry)

    def _exchange(self, connection: ServerConnection) -> None:
        """Wait until the socket (or the input, when the window has room) is ready; serve it."""
        fd = connection.fileno()
        readers = [fd] if self.in_flight else []
        writers = [fd] if self.out else []
        if not self.exhausted and len(self.in_flight) < self.window:
            input_fd = self.source.fileno()
            if input_fd is not None:
                readers.append(input_fd)
        timeout = None
        if self.in_flight:
            timeout = max(0.0, self.last_progress + self.host.timeout - time.monotonic())
        if connection.pending():
            timeout = 0.0   # TLS holds decrypted bytes: read them now (select cannot see them)
        readable, writable, _ = select.select(readers, writers, [], timeout)
        if connection.pending() and fd not in readable:
            readable.append(fd)
        if writable:
            sent = connection.send_some(memoryview(self.out))
            if sent:
                del self.out[:sent]
                self.sent += sent
                self.last_progress = time.monotonic()
        if fd in readable:
            outcomes = connection.receive_some()
            if len(outcomes) > len(self.in_flight):
                raise connection.lost("the node sent more answers than statements")
            for outcome in outcomes:
                entry = self.in_flight.popleft()
                self.host.answered(entry.statement, outcome)
                entry.result = StepResult(entry.step, outcome)
            self.last_progress = time.monotonic()
        if self.in_flight and not readable and not writable \
                and time.monotonic() - self.last_progress >= self.host.timeout:
            raise connection.lost(f"no answer within {self.host.timeout:g}s", timed_out=True)

    def _lose(self, connection: ServerConnection, lost: ConnectionLost) -> None:
        """Sent and unanswered: a read goes again, the rest is outcome unknown; unsent go anew."""
        message = str(lost)
        gone: list[_Entry] = []
        again: list[_Entry] = []
        for entry in self.in_flight:
            if entry.start >= self.sent:
                again.append(entry)
            elif not entry.resent and not isinstance(lost, NoAnswer) \
                    and self.host.retryable(entry.statement):
                entry.resent = True
                again.append(entry)
            else:
                gone.append(entry)
        for entry in gone:
            entry.result = StepResult(entry.step, Outcome.failure(ERROR_PREFIX + message),
                                      lost=True)
        self.unsent.extendleft(reversed(again))
        self.in_flight.clear()
        self.out.clear()
        connection.close()
        self.connection = None
        self.host.lost([entry.statement for entry in gone])
