"""nodes/server/remote_peer.py alone: the lease's clock and connection, the planned fence question.

The link is a stand-in that answers as a peer would (a unit test of one
module); tests/integration/test_network_peers.py runs the real thing.
"""

from __future__ import annotations

import pytest

from engine.storage.peers import PeerUnreachable
from nodes.server import remote_peer
from nodes.server.remote_peer import PeerAddress, RemoteLease, RemotePeer


class FakeLink:
    """Answers `.peer fence` (held or not) and `.peer check` (no violation), counting requests."""

    def __init__(self, held: bool = True):
        self.peer_id = "m2"
        self.address = PeerAddress("127.0.0.1", 1)
        self.generation = 1
        self.held = held
        self.sent: list[bytes] = []
        self.ahead: list[bytes] = []
        self.max_request_bytes = 1 << 20

    def ask_each(self, requests, retry=True):
        self.sent.extend(requests)
        answers = []
        for request in requests:
            if request.startswith(b".peer fence"):
                answers.append({"held": self.held})
            elif request.startswith(b".peer check"):
                answers.append({"violation": None} if self.held else "`.peer check` needs the lease")
        return answers

    def ask(self, requests, retry=True):
        return self.ask_each(requests, retry)[-1]

    def send_ahead(self, request):
        self.ahead.append(request)


def test_a_lease_is_checked_on_its_own_clock_with_a_margin(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(remote_peer.time, "monotonic", lambda: now[0])
    link = FakeLink()
    lease = RemoteLease(link, lease_s=3.0)
    assert lease.try_acquire()
    lease.check()
    now[0] += 3.0 - remote_peer.LEASE_MARGIN_S + 0.01
    with pytest.raises(PeerUnreachable, match="lease ran out"):
        lease.check()
    assert lease.try_acquire(), "re-entrant while held"
    assert sum(request.startswith(b".peer fence") for request in link.sent) == 1
    lease.release()
    assert link.ahead == []
    lease.release()
    assert link.ahead == [b".peer release;"], "sent ahead, not waited for"


def test_a_lease_dies_with_its_connection():
    link = FakeLink()
    lease = RemoteLease(link, lease_s=5.0)
    assert lease.try_acquire()
    link.generation += 1     # the connection was made again: the peer dropped the lease
    with pytest.raises(PeerUnreachable, match="lost with its connection"):
        lease.check()
    lease.release()
    assert link.ahead == [], "nothing to release on the new connection"


def test_a_lease_not_granted_is_asked_again_with_its_question():
    link = FakeLink(held=False)
    lease = RemoteLease(link, lease_s=5.0)
    lease.plan_check([b".peer check W10=;"])
    assert not lease.try_acquire()
    link.held = True
    assert lease.try_acquire()
    assert link.sent.count(b".peer check W10=;") == 2


def test_the_fence_question_rides_with_the_lease():
    peer = RemotePeer("m2", PeerAddress("127.0.0.1", 1))
    link = FakeLink()
    peer.link = link                                 # type: ignore[assignment]
    peer._lease = RemoteLease(link, 5.0)             # type: ignore[arg-type]
    files = [("s/tables/t.json", {"change": 4, "kind": "table", "dropped": False})]
    peer.plan_fence(files)
    assert peer.lock.try_acquire()
    asked = len(link.sent)
    assert peer.fence_violation(files) is None
    assert len(link.sent) == asked, "answered with the lease: no further round trip"
    # Another list (a pessimistic statement's commit under a lease taken before): asked now.
    assert peer.fence_violation(list(files)) is None
    assert len(link.sent) == asked + 1
