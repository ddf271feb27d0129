"""The client's pipeline (nodes/client/pipeline.py) against a scripted node on a real socket.

The node is a thread that frames requests with the real `RequestFramer`, so
the test sees exactly which statements reached it on which connection. Its
reads are blocking reads until the client closes (no polling): every accept
and recv has a deadline (IO_TIMEOUT_S), and `finish` waits for the thread with
one and raises in the test what failed in it.
"""

from __future__ import annotations

import io
import socket
import threading

from engine.language.script_source import ScriptSource
from nodes.client.batch import run_script, run_text
from nodes.client.display import Display
from nodes.client.runners import RemoteRunner
from nodes.protocol.wire import RequestFramer, encode_message
from tests.conftest import wait_until

USE_ANSWER = "Ny tahiry : d dia miasa ankehitriny"
IO_TIMEOUT_S = 10.0                    # one accept or recv of the scripted node
FINISH_DEADLINE_S = IO_TIMEOUT_S + 5   # its whole run, once the client is done


class ScriptedNode:
    """Accepts connections one after another; `behaviours[i]` serves the i-th one."""

    def __init__(self, *behaviours):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(IO_TIMEOUT_S)
        self.port = self.listener.getsockname()[1]
        self.received: list[list[str]] = []
        self.behaviours = list(behaviours)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            for behaviour in self.behaviours:
                conn, _ = self.listener.accept()
                got: list[str] = []
                self.received.append(got)
                with conn:
                    conn.settimeout(IO_TIMEOUT_S)
                    behaviour(conn, got)
        except BaseException as failure:  # a timeout, or a behaviour's assertion
            self.failure = failure
        finally:
            self.listener.close()

    def finish(self) -> None:
        """Wait until every connection was served; raise here what failed in the node."""
        wait_until(lambda: not self.thread.is_alive(), FINISH_DEADLINE_S,
                   "the scripted node to serve its connections", interval_s=0.01)
        if self.failure is not None:
            raise AssertionError(f"the scripted node failed: {self.failure!r}") from self.failure


def answer(text: str) -> bytes:
    return encode_message(USE_ANSWER if text.startswith("ampiasao") else f"answer {text}")


def read_until(conn, got: list[str], framer: RequestFramer, count: int) -> None:
    while len(got) < count:
        data = conn.recv(65536)
        if not data:
            return
        got.extend(request.text for request in framer.feed(data))


def answers_then_hangs_up(window: int, answered: int):
    """Wait for a whole window of statements, answer the first few, take the statements
    the client sends in their place (the window is full again), then close."""
    def behaviour(conn, got):
        framer = RequestFramer()
        read_until(conn, got, framer, window)
        conn.sendall(b"".join(answer(text) for text in got[:answered]))
        read_until(conn, got, framer, window + answered)
        conn.shutdown(socket.SHUT_WR)
    return behaviour


def answers_everything(conn, got):
    framer = RequestFramer()
    while True:
        data = conn.recv(65536)
        if not data:
            return
        requests = framer.feed(data)
        got.extend(request.text for request in requests)
        conn.sendall(b"".join(answer(request.text) for request in requests))


def test_a_connection_lost_mid_window_reports_the_unanswered_and_sends_the_rest_anew():
    node = ScriptedNode(answers_then_hangs_up(64, 3), answers_everything)
    script = "ampiasao d;\n" + "".join(f"fafao ao@ t{n};\n" for n in range(1, 100))
    out = io.StringIO()
    runner = RemoteRunner("127.0.0.1", node.port, timeout=5)
    result = run_script(ScriptSource(text=script), runner, Display("table", out), source="s.tah")
    runner.close()
    node.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) == 100 and result.statements == 100 and not result.ok
    assert lines[:3] == [USE_ANSWER, "answer fafao ao@ t1", "answer fafao ao@ t2"]
    for n in range(3, 67):       # sent, never answered: outcome unknown, with file:line
        assert lines[n].startswith(f"s.tah:{n + 1}: Hadisoana : "), lines[n]
        assert "outcome is unknown" in lines[n]
    assert lines[67:] == [f"answer fafao ao@ t{n}" for n in range(67, 100)]
    # A whole window went out before any answer, and no more; no unanswered write
    # was sent again; the new connection selected the database first.
    assert node.received[0] == ["ampiasao d"] + [f"fafao ao@ t{n}" for n in range(1, 67)]
    assert node.received[1] == ["ampiasao d"] + [f"fafao ao@ t{n}" for n in range(67, 100)]


def test_unanswered_reads_are_sent_again_once_writes_are_outcome_unknown():
    node = ScriptedNode(answers_then_hangs_up(4, 1), answers_everything)
    out = io.StringIO()
    runner = RemoteRunner("127.0.0.1", node.port, timeout=5, window=4)
    result = run_text("alaivo 1; alaivo 2; fafao ao@ t; asehoy ny tabilao; alaivo 3;", runner,
                      Display("table", out), pipelined=True)
    runner.close()
    node.finish()
    assert node.received[0][:4] == ["alaivo 1", "alaivo 2", "fafao ao@ t", "asehoy ny tabilao"]
    assert node.received[1] == ["alaivo 2", "asehoy ny tabilao", "alaivo 3"]
    lines = out.getvalue().splitlines()
    assert lines[0] == "answer alaivo 1" and lines[1] == "answer alaivo 2"
    assert "outcome is unknown" in lines[2]
    assert lines[3:] == ["answer asehoy ny tabilao", "answer alaivo 3"]
    assert result.errors == 1


def test_an_unanswered_ampiasao_is_the_database_replayed():
    node = ScriptedNode(answers_then_hangs_up(3, 1), answers_everything)
    out = io.StringIO()
    runner = RemoteRunner("127.0.0.1", node.port, timeout=5, window=3)
    run_text("fafao ao@ a; ampiasao d; fafao ao@ b; fafao ao@ c; fafao ao@ e;", runner,
             Display("table", out), pipelined=True)
    runner.close()
    node.finish()
    # `ampiasao` is sent again (it changes nothing); the writes after it are not.
    assert node.received == [["fafao ao@ a", "ampiasao d", "fafao ao@ b", "fafao ao@ c"],
                             ["ampiasao d", "fafao ao@ e"]]
    assert runner.database == "d"


def test_interactive_text_runs_one_statement_at_a_time():
    def one_at_a_time(conn, got):
        framer = RequestFramer()
        while True:
            data = conn.recv(65536)
            if not data:
                return
            requests = framer.feed(data)
            assert len(requests) == 1, "a second statement came before the first answer"
            got.append(requests[0].text)
            conn.sendall(answer(requests[0].text))

    node = ScriptedNode(one_at_a_time)
    out = io.StringIO()
    runner = RemoteRunner("127.0.0.1", node.port, timeout=5)
    result = run_text("alaivo 1; alaivo 2; alaivo 3;", runner, Display("table", out))
    runner.close()
    node.finish()
    assert result.ok and node.received == [["alaivo 1", "alaivo 2", "alaivo 3"]]


def never_answers(conn, got):
    """Take the requests and answer none, until the client hangs up."""
    framer = RequestFramer()
    while data := conn.recv(65536):
        got.extend(request.text for request in framer.feed(data))


def test_a_read_with_no_answer_in_time_is_not_sent_again():
    out = io.StringIO()
    node = ScriptedNode(never_answers)
    runner = RemoteRunner("127.0.0.1", node.port, timeout=0.3)
    result = run_text("alaivo 1; alaivo 2;", runner, Display("table", out), pipelined=True)
    runner.close()
    node.finish()
    assert node.received == [["alaivo 1", "alaivo 2"]]
    assert result.errors == 2 and "no answer within 0.3s" in out.getvalue()
    # A read one at a time too (the interactive loop, the driver).
    node = ScriptedNode(never_answers)
    runner = RemoteRunner("127.0.0.1", node.port, timeout=0.3)
    result = run_text("alaivo 3;", runner, Display("table", out))
    runner.close()
    node.finish()
    assert node.received == [["alaivo 3"]] and result.errors == 1
