"""Certified commits across the network (issues 9 and 13): servers that are peers by address only.

Two real server processes on loopback whose peers files name each other by
address (`{"address": "127.0.0.1:PORT"}`), never by directory: pull on write
and the commit fence go over `.peer` requests (nodes/server/remote_peer.py,
nodes/server/peer_service.py). Replication between their directories is
the in-process replicator of tests/integration/replication_scenarios.py, as
the supervisor of one machine runs it (the servers do not know about it).
Issue 9's guarantees must hold as with folder peers: concurrent writers
straight to both servers lose no acknowledged insert; a slow
read-modify-write is fenced by the newer version written on the other
server; a lease whose holder dies or freezes does not block writes beyond
the lease; a peer that cannot be reached makes writes fail cleanly while
reads go on, and nothing acknowledged is lost when it returns.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.errors import storage_fault_operation
from tests.conftest import REPO_ROOT, wait_until
from tests.integration.replication_scenarios import (
    DATABASE,
    SLOW_ROW,
    ReplicatedPair,
    WriteHistory,
    run_multi_master,
    run_slow_write_race,
)
from tests.integration.wire import WireClient

SEED_ROW = {1}


class NetworkPair(ReplicatedPair):
    """m1 and m2, each knowing the other only by its address (peers files written once both listen)."""

    def __enter__(self) -> NetworkPair:
        self.replicator.start()
        run = self.data["m1"].parent.parent
        self.peers_files = {server: run / f"{server}.peers.json" for server in self.data}
        for server, data in self.data.items():
            self.nodes[server] = self.starter("server", server, "--data", str(data),
                                              "--peers-file", str(self.peers_files[server]),
                                              "--peer-lease-s", "3")
        for server in self.data:
            self.write_peers(server)
        return self

    def write_peers(self, server: str) -> None:
        others = {other: {"address": f"127.0.0.1:{node.port}"}
                  for other, node in self.nodes.items() if other != server}
        self.peers_files[server].write_text(json.dumps({"peers": others}))

    def status(self, server: str) -> dict:
        with WireClient(self.port(server)) as client:
            return json.loads(client.one(".status;").message)


@pytest.fixture
def pair(start_node, tmp_path):
    with NetworkPair(start_node, tmp_path) as network_pair:
        yield network_pair


def test_the_servers_know_each_other_only_by_address(pair):
    for server in ("m1", "m2"):
        peers = json.loads(pair.peers_files[server].read_text())["peers"]
        assert all(set(entry) == {"address"} for entry in peers.values())
    with WireClient(pair.port("m1")) as one, WireClient(pair.port("m2")) as two:
        pair.prepare([one, two])
        two.ok(f"ampiasao {DATABASE};")
        two.ok('manampia ao@ t sanda (2, "m2");')
    assert pair.status("m1")["peer_requests"] > 0, "m2 asked m1 over the network"
    assert pair.status("m2")["peer_requests"] > 0


@pytest.mark.slow
def test_writers_straight_to_both_servers_lose_nothing_across_the_network(pair):
    history = run_multi_master(pair, seconds=4.0)
    assert len(history.acknowledged) > 50, \
        f"only {len(history.acknowledged)} writes acknowledged: {history.failed[:3]}"
    assert history.lost == {"m1": set(), "m2": set()}
    assert history.failed_present(SEED_ROW) == set(), "a write that failed cleanly is present"
    assert pair.replicator.conflicts() == []
    assert pair.status("m1")["peer_leases"] == 0 and pair.status("m2")["peer_leases"] == 0


@pytest.mark.slow
def test_a_slow_write_is_fenced_by_the_newer_version_on_the_other_server(pair):
    history, raced = run_slow_write_race(pair)
    assert raced, "the slow statement ended before m2's write: no race was made"
    assert history.failed == [], "the slow write is re-run on the newer version, not refused"
    assert history.acknowledged == {1777, SLOW_ROW}
    assert history.lost == {"m1": set(), "m2": set()}
    assert pair.replicator.conflicts() == []


def test_writes_without_replication_build_on_the_peer_over_the_network(start_node, tmp_path):
    """No replicator at all: only pull on write brings m1's version to m2, and back."""
    pair = NetworkPair(start_node, tmp_path)
    pair.replicator.start = lambda: None   # the servers alone
    with pair:
        with WireClient(pair.port("m1")) as one, WireClient(pair.port("m2")) as two:
            for client in (one, two):   # the balancer sends database DDL to every server
                client.ok(f"manamboara tahiry {DATABASE};")
                client.ok(f"ampiasao {DATABASE};")
            one.ok("manamboara tabilao t (id ISA(null,null));")
            one.ok("manampia ao@ t sanda (1), (2);")
            two.ok("manampia ao@ t sanda (3);")
            assert sorted(r[0] for r in two.rows("alaivo id ao@ t;")) == [1, 2, 3]
            one.ok("fafao ao@ t rehefa id = 1;")
            assert sorted(r[0] for r in one.rows("alaivo id ao@ t;")) == [2, 3]
            two.ok("ravao ny tabilao t;")
            answer = one.one("manampia ao@ t sanda (4);")
            assert not answer.ok and "t n'as pas été trouvé" in answer.message


LEASE_HOLDER = """
import socket, sys
from nodes.protocol.peer import fence_request
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
sock.sendall(fence_request(float(sys.argv[2]), 0))
answer = b""
while not answer.endswith(b"END\\n"):
    answer += sock.recv(4096)
print("held" if b'"held":true' in answer else "not held", flush=True)
sys.stdin.read()   # holds the connection until killed
"""


def hold_lease(port: int, seconds: float) -> subprocess.Popen:
    """Another process holding a lease on the server at `port` (a peer frozen or dying)."""
    holder = subprocess.Popen([sys.executable, "-c", LEASE_HOLDER, str(port), str(seconds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def timed_write(port: int, key: int) -> tuple[threading.Thread, list]:
    """An insert on its own thread: (thread, [(answer, seconds)] once done)."""
    done: list = []

    def write() -> None:
        with WireClient(port, timeout=30) as client:
            client.ok(f"ampiasao {DATABASE};")
            started = time.monotonic()
            answer = client.one(f'manampia ao@ t sanda ({key}, "w");')
            done.append((answer, time.monotonic() - started))

    thread = threading.Thread(target=write)
    thread.start()
    return thread, done


def test_a_dead_lease_holder_blocks_writes_only_until_its_connection_drops(pair):
    with WireClient(pair.port("m1")) as one, WireClient(pair.port("m2")) as two:
        pair.prepare([one, two])
    holder = hold_lease(pair.port("m1"), 60)
    try:
        thread, done = timed_write(pair.port("m1"), 10)
        thread.join(1.0)
        assert thread.is_alive(), "the commit waits for m1's lock, leased to the holder"
        holder.kill()                       # dies holding it: the connection drops
        holder.wait()
        killed = time.monotonic()
        thread.join(10)
        assert done and done[0][0].ok, done
        assert time.monotonic() - killed < 2.0, "the lease ended with its connection"
    finally:
        holder.kill()
    assert pair.status("m1")["peer_leases_dropped"] == 1


def test_a_frozen_lease_holder_blocks_writes_only_until_the_lease_ends(pair):
    with WireClient(pair.port("m1")) as one, WireClient(pair.port("m2")) as two:
        pair.prepare([one, two])
    holder = hold_lease(pair.port("m1"), 2.0)
    holder.send_signal(signal.SIGSTOP)      # alive, connected, silent
    try:
        thread, done = timed_write(pair.port("m1"), 11)
        thread.join(8.0)
        assert done and done[0][0].ok, done
        assert done[0][1] < 4.0, "the lease's 2 s, not the lock timeout"
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.kill()
    assert pair.status("m1")["peer_leases_expired"] == 1


def test_an_unreachable_peer_makes_writes_fail_cleanly_and_reads_go_on(pair, start_node):
    history = WriteHistory()
    with WireClient(pair.port("m1")) as one, WireClient(pair.port("m2")) as two:
        pair.prepare([one, two])
        one.ok(f"ampiasao {DATABASE};")
        for key in (10, 11):
            history.record(key, one.one(f'manampia ao@ t sanda ({key}, "before");'))
    pair.settle()
    pair.nodes["m2"].signal(signal.SIGKILL)
    wait_until(lambda: not pair.nodes["m2"].alive(), 5.0, "m2 gone")
    with WireClient(pair.port("m1")) as one:
        one.ok(f"ampiasao {DATABASE};")
        started = time.monotonic()
        refused = one.one('manampia ao@ t sanda (20, "during");')
        assert time.monotonic() - started < 5.0
        assert not refused.ok and "tsy tratra ny mpizara m2" in refused.message, refused.message
        assert storage_fault_operation(refused.message) == "write", \
            "a storage fault: the balancer sends the write elsewhere"
        assert sorted(row[0] for row in one.rows("alaivo id ao@ t;")) == [1, 10, 11], \
            "reads go on, and the refused write is not there"
        status = json.loads(one.one(".status;").message)
        assert any("peer unreachable: m2" in fault["reason"] for fault in status["storage_faults"])
    # m2 comes back on its port: writes work again and nothing acknowledged is lost.
    pair.nodes["m2"] = start_node.restart(pair.nodes["m2"])
    with WireClient(pair.port("m1")) as one:
        one.ok(f"ampiasao {DATABASE};")
        history.record(30, wait_until(
            lambda: (answer := one.one('manampia ao@ t sanda (30, "after");')).ok and answer,
            10.0, "a write on m1 once m2 is back"))
    pair.settle()
    present = {server: set(pair.ids(server)) for server in pair.nodes}
    assert history.acknowledged == {10, 11, 30}
    assert all(history.acknowledged <= ids and 20 not in ids for ids in present.values()), present


def test_a_peer_speaking_another_protocol_version_is_a_clear_error(start_node, tmp_path):
    """A fake peer answering hello with protocol 99: m1's writes fail and say why."""
    import socketserver

    class OldPeer(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            data = b""
            while b";" not in data:
                chunk = self.request.recv(4096)
                if not chunk:
                    return
                data += chunk
            self.wfile.write(b'RESULT_MESSAGE\n{"protocol": 99, "node": "old"}\nEND\n')

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), OldPeer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        data = tmp_path / "data" / "m1"
        m1 = start_node("server", "m1", "--data", str(data), "--peer-address",
                        f"old=127.0.0.1:{server.server_address[1]}")
        with WireClient(m1.port) as one:
            answer = one.one(f"manamboara tahiry {DATABASE};")
            assert not answer.ok and "speaks peer protocol 99" in answer.message, answer.message
            assert not (Path(data) / DATABASE / "database.json").exists()
    finally:
        server.shutdown()
        server.server_close()


def test_peers_speak_over_tls_behind_the_secret(start_node, tmp_path):
    from nodes.protocol.tls import client_context
    from tests.tlskit import Certificates

    secret = "peer-secret-0123456789abcdef"
    machine = Certificates(tmp_path / "tls").machine("host", ["127.0.0.1"])
    env = {"TAHIRY_SECRET": secret}
    data = {server: tmp_path / "data" / server for server in ("m1", "m2")}
    files = {server: tmp_path / f"{server}.peers.json" for server in data}
    nodes = {server: start_node("server", server, "--data", str(data[server]), "--peers-file",
                                str(files[server]), "--require-secret", *machine.argv(), env=env,
                                wait=False)   # (its readiness probe speaks plain TCP)
             for server in data}
    for server, other in (("m1", "m2"), ("m2", "m1")):
        files[server].write_text(json.dumps(
            {"peers": {other: {"address": f"127.0.0.1:{nodes[other].port}"}}}))
    context = client_context(machine)

    def client(server: str) -> WireClient:
        wire = WireClient(nodes[server].port)
        wire.sock = context.wrap_socket(wire.sock, server_hostname="127.0.0.1")
        wire.ok(f".auth {secret};")
        return wire

    def ready(server: str) -> bool:
        try:
            with client(server):
                return True
        except OSError:
            return False

    for server in nodes:
        wait_until(lambda server=server: ready(server), 15.0, f"{server} answering over TLS")
    with client("m1") as one, client("m2") as two:
        for each in (one, two):
            each.ok(f"manamboara tahiry {DATABASE};")
            each.ok(f"ampiasao {DATABASE};")
        one.ok("manamboara tabilao t (id ISA(null,null));")
        one.ok("manampia ao@ t sanda (1);")
        two.ok("manampia ao@ t sanda (2);")   # pulls m1's version over TLS, with the secret
        assert sorted(row[0] for row in two.rows("alaivo id ao@ t;")) == [1, 2]
        status = json.loads(one.one(".status;").message)
        assert status["peer_requests"] > 0 and status["auth_failures"] == 0
    # Without the secret, a peer request is never answered.
    with WireClient(nodes["m1"].port) as plain:
        plain.sock = context.wrap_socket(plain.sock, server_hostname="127.0.0.1")
        [answer] = plain.run(".peer hello 1;")
        assert not answer.ok and "auth" in answer.message.lower(), answer.message


def test_dropping_a_database_with_an_unreachable_peer_fails_cleanly(pair):
    with WireClient(pair.port("m1")) as one, WireClient(pair.port("m2")) as two:
        pair.prepare([one, two])
    pair.nodes["m2"].signal(signal.SIGKILL)
    wait_until(lambda: not pair.nodes["m2"].alive(), 5.0, "m2 gone")
    with WireClient(pair.port("m1")) as one:
        answer = one.one(f"ravao ny tahiry {DATABASE};")
        assert not answer.ok and "tsy tratra ny mpizara m2" in answer.message, answer.message
        one.ok(f"ampiasao {DATABASE};")
        assert one.rows("alaivo id ao@ t;") == [[1]], "nothing dropped, reads go on"


def test_a_frozen_peer_makes_writes_fail_cleanly_within_the_timeout(pair):
    with WireClient(pair.port("m1")) as one, WireClient(pair.port("m2")) as two:
        pair.prepare([one, two])
    pair.nodes["m2"].signal(signal.SIGSTOP)            # connected, silent
    try:
        with WireClient(pair.port("m1")) as one:
            one.ok(f"ampiasao {DATABASE};")
            started = time.monotonic()
            refused = one.one('manampia ao@ t sanda (40, "frozen");')
            waited = time.monotonic() - started
            assert not refused.ok and "tsy tratra ny mpizara m2" in refused.message
            assert waited < 5.0, f"one request timeout (3 s), not the lock's: {waited:.1f} s"
            assert one.rows("alaivo id ao@ t;") == [[1]], "reads go on"
    finally:
        pair.nodes["m2"].signal(signal.SIGCONT)
    with WireClient(pair.port("m1")) as one:
        one.ok(f"ampiasao {DATABASE};")
        wait_until(lambda: one.one('manampia ao@ t sanda (41, "thawed");').ok, 10.0,
                   "a write once m2 answers again")
    pair.settle()
    assert all(40 not in set(pair.ids(server)) and 41 in set(pair.ids(server))
               for server in pair.nodes)


def test_a_server_its_peers_no_longer_list_cannot_write(pair):
    """A server removed from the topology on the other machines but still running there
    with its old peers (its machine refused or missed the edit, or came back later with
    the old file): it certified its writes against peers that no longer certified theirs
    against it, acknowledged them, and they were lost in the conflict that followed. Now
    its peers refuse to fence for it: its writes fail cleanly; theirs go on."""
    with WireClient(pair.port("m1")) as one, WireClient(pair.port("m2")) as two:
        pair.prepare([one, two])
        two.ok(f"ampiasao {DATABASE};")
        two.ok('manampia ao@ t sanda (2, "member");')
        pair.peers_files["m1"].write_text(json.dumps({"peers": {}}))   # m2 removed on m1's side
        refused = two.one('manampia ao@ t sanda (3, "removed");')
        assert not refused.ok and "m2 is not a peer of m1" in refused.message, refused.message
        assert storage_fault_operation(refused.message) == "write"
        one.ok(f"ampiasao {DATABASE};")
        one.ok('manampia ao@ t sanda (4, "m1 alone");')
        pair.write_peers("m1")                                       # m2 back in m1's topology
        wait_until(lambda: two.one('manampia ao@ t sanda (5, "again");').ok, 10.0,
                   "m2 writing again")
    pair.settle()
    assert 3 not in set(pair.ids("m1")) | set(pair.ids("m2"))


def test_a_peers_fault_ends_with_the_next_write_that_goes_through(pair, start_node):
    """A table created while m2 was down left a fault on the database's marker, and
    `.status` showed it (and the storage-faults gauge stayed 1) until the next DDL, long
    after m2 was back and writes went through again."""
    with WireClient(pair.port("m1")) as one, WireClient(pair.port("m2")) as two:
        pair.prepare([one, two])
    pair.settle()
    pair.nodes["m2"].signal(signal.SIGKILL)
    wait_until(lambda: not pair.nodes["m2"].alive(), 5.0, "m2 gone")
    with WireClient(pair.port("m1")) as one:
        one.ok(f"ampiasao {DATABASE};")
        assert not one.one("manamboara tabilao u (id ISA(0,null));").ok
        assert pair.status("m1")["storage_faults"], "the refused DDL left a fault"
    pair.nodes["m2"] = start_node.restart(pair.nodes["m2"])
    with WireClient(pair.port("m1")) as one:
        one.ok(f"ampiasao {DATABASE};")
        wait_until(lambda: one.one('manampia ao@ t sanda (40, "back");').ok, 10.0,
                   "a write on m1 once m2 is back")
    assert pair.status("m1")["storage_faults"] == []
