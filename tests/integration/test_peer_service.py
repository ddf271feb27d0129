"""A server answers `.peer` requests (nodes/server/peer_service.py) over real sockets.

What another server or a replicator on another machine asks: versions,
shipments out (`fetch`) and in (`ship`), and the lease on the directory's
write lock (`fence`), which ends with the connection or at its own end.
"""

from __future__ import annotations

import time

from engine.session import Session
from engine.storage.object_copy import deliver_shipment, plan_shipment
from engine.storage.object_state import CopyDigest, content_digest, current_document, read_state, version_of
from engine.storage.peers import DirectoryLock
from engine.storage.store import Store
from nodes.protocol.peer import (
    RemoteDigest,
    check_requests,
    decode_answer,
    digest_of,
    digest_request,
    fence_request,
    fetch_request,
    hello_request,
    names_request,
    release_request,
    request_bytes,
    ship_requests,
    shipment_of,
    versions_request,
)
from tests.conftest import wait_until
from tests.faults import fill_up, tiny_tmpfs
from tests.integration.wire import WireClient

TABLE = "s/tables/t.json"


def ask(client: WireClient, data: bytes) -> dict:
    return decode_answer(client.run(data.decode())[0])


def ask_all(client: WireClient, requests: list[bytes]) -> dict:
    responses = client.run(b"".join(requests).decode(), len(requests))
    return decode_answer(responses[-1])


def test_versions_fetch_and_ship(start_node, tmp_path):
    m1_dir = start_node.workdir / "data" / "m1"
    m1 = start_node("server", "m1", "--data", str(m1_dir))
    with WireClient(m1.port) as sql, WireClient(m1.port) as peer:
        assert ask(peer, hello_request())["node"] == "m1"
        sql.ok("manamboara tahiry s;")
        sql.ok("ampiasao s;")
        sql.ok("manamboara tabilao t (id ISA(null,null));")
        sql.ok("manampia ao@ t sanda (1), (2);")
        [before] = ask(peer, versions_request([TABLE])).values()
        assert before["change"] == version_of(m1_dir, TABLE).change and not before["dropped"]
        assert ask(peer, versions_request(["s/tables/nothing.json"])) == {
            "s/tables/nothing.json": None}
        assert ask(peer, names_request("s", "tables")) == {"names": ["t"]}
        assert ask(peer, names_request()) == {"rels": ["s/database.json", TABLE]}

        # A copy made from nothing, then brought up to date with the lines only.
        mine = tmp_path / "mine"
        lock = DirectoryLock(mine.mkdir() or mine)
        shipment = shipment_of(ask(peer, fetch_request(TABLE, None, False)))
        assert shipment.base is None and deliver_shipment(mine, TABLE, shipment, lock)
        sql.ok("manampia ao@ t sanda (3);")
        ours = version_of(mine, TABLE)
        shipment = shipment_of(ask(peer, fetch_request(TABLE, ours.change, False)))
        assert shipment.base == ours.change and shipment.snapshot is None, "only the new line"
        assert deliver_shipment(mine, TABLE, shipment, lock)
        assert current_document(mine / TABLE)["rows"] == [[1], [2], [3]]
        assert shipment_of(ask(peer, fetch_request(TABLE, shipment.version, False))) is None

        # A newer version made here goes the other way, as `.peer ship`.
        Store(mine).append_rows("s", "t", [{"name": "id", "domain": []}], [[4]])
        outgoing = plan_shipment(mine, TABLE, version_of(m1_dir, TABLE))
        answer = ask_all(peer, ship_requests(TABLE, outgoing))
        assert answer == {"result": "moved", "version": outgoing.version}
        assert sorted(row[0] for row in sql.rows("alaivo id ao@ t;")) == [1, 2, 3, 4]
        assert ask_all(peer, ship_requests(TABLE, outgoing))["result"] == "current"

        # A big snapshot goes in parts, under the request limit.
        Store(mine).append_rows("s", "t", [{"name": "id", "domain": []}],
                                [[n] for n in range(5, 200_000)])
        Store(mine).checkpoint(mine / TABLE)
        outgoing = plan_shipment(mine, TABLE, version_of(m1_dir, TABLE))
        requests = ship_requests(TABLE, outgoing, max_request_bytes=256 * 1024)
        assert len(requests) > 2
        assert ask_all(peer, requests)["result"] == "moved"
        assert len(sql.rows("alaivo id ao@ t;")) == 199_999


def test_digests_say_which_content_a_copy_holds_at_its_version(start_node):
    m1_dir = start_node.workdir / "data" / "m1"
    m1 = start_node("server", "m1", "--data", str(m1_dir))
    with WireClient(m1.port) as sql, WireClient(m1.port) as peer:
        sql.ok("manamboara tahiry s;")
        sql.ok("ampiasao s;")
        sql.ok("manamboara tabilao t (id ISA(null,null));")
        sql.ok("manampia ao@ t sanda (1), (2);")
        sql.ok("manampia ao@ t sanda (3);")
        state = read_state(m1_dir, TABLE)
        answer = ask(peer, digest_request([TABLE, "s/tables/none.json"], False))
        assert digest_of(answer[TABLE]) == RemoteDigest(CopyDigest.of(state))
        assert digest_of(answer["s/tables/none.json"]) == RemoteDigest(None)
        whole = digest_of(ask(peer, digest_request([TABLE], True))[TABLE])
        assert whole.content == content_digest(m1_dir, TABLE, state.version) is not None
        # The next write: the digests follow it (read from where the last reading ended).
        sql.ok("manampia ao@ t sanda (4);")
        again = digest_of(ask(peer, digest_request([TABLE], False))[TABLE]).digest
        assert again == CopyDigest.of(read_state(m1_dir, TABLE)) and again != whole.digest
        # A copy that does not read says so, and nothing changes.
        (m1_dir / "s" / "tables" / "u.json").write_bytes(b"{torn")
        broken = digest_of(ask(peer, digest_request(["s/tables/u.json"], True))["s/tables/u.json"])
        assert broken.digest is None and broken.error
        assert (m1_dir / "s" / "tables" / "u.json").read_bytes() == b"{torn"


def test_bad_peer_requests_are_refused_and_change_nothing(start_node):
    m1_dir = start_node.workdir / "data" / "m1"
    m1 = start_node("server", "m1", "--data", str(m1_dir))
    with WireClient(m1.port) as peer:
        for request, error in [
            (b".peer hello 1;", "peer protocol 1 is not spoken here"),
            (b".peer digest 2 s/tables/t.json;", "content flag '2' is neither 0 nor 1"),
            (b".peer digest 0 s/../t.json;", "is not an object's path"),
            (b".peer fetch ../../etc/passwd.json 0 0;", "is not an object's path"),
            (b".peer versions s/tables/../t.json;", "is not an object's path"),
            (b".peer ship s/tables/t.json AAAA;", "not a shipment"),
            (request_bytes("check", "W10="), "needs the lease"),
            (b".peer dance;", "unknown peer request"),
        ]:
            [response] = peer.run(request.decode())
            assert not response.ok and error in response.message, response.message
        assert not (m1_dir / "s").exists()
        # Accounts and grants are objects too (replicated as any other).
        account = "@tahiry/accounts/ana.json"
        assert ask(peer, versions_request([account, "s/grants/ana.json"])) == {
            account: None, "s/grants/ana.json": None}
        assert ask(peer, names_request("@tahiry", "accounts")) == {"names": []}
        [refused] = peer.run(names_request("@tahiry", "tables").decode())
        assert not refused.ok and "no such object folder" in refused.message


def test_a_lease_ends_with_its_connection_or_its_time(start_node):
    m1_dir = start_node.workdir / "data" / "m1"
    m1 = start_node("server", "m1", "--data", str(m1_dir))
    with WireClient(m1.port) as first, WireClient(m1.port) as second:
        assert ask(first, fence_request(30, 0)) == {"held": True}
        assert ask(second, fence_request(30, 50)) == {"held": False}
        assert ask(first, fence_request(30, 0)) == {"held": True}, "the holder renews"
        assert ask(first, check_requests([(TABLE, 1, None)])[0]) == {"violation": None}
        assert not DirectoryLock(m1_dir).try_acquire(), "the flock itself is held"
        assert ask(first, release_request()) == {"held": False}
        assert ask(second, fence_request(30, 50)) == {"held": True}
    # `second` went away holding it: the next one gets it.
    with WireClient(m1.port) as third, WireClient(m1.port) as fourth:
        wait_until(lambda: ask(third, fence_request(0.5, 100))["held"], 5.0, "the lease freed")
        started = time.monotonic()
        assert ask(fourth, fence_request(30, 2000)) == {"held": True}, "the lease ran out"
        assert time.monotonic() - started < 1.5
        status = fourth.one(".status;").message
        assert '"peer_leases_expired":1' in status and '"peer_leases_dropped":1' in status


def test_a_copy_shipped_here_that_cannot_be_written_is_this_servers_storage_fault(start_node,
                                                                                   tmp_path):
    """Copies from another machine into a full disk failed there only: this server's
    `.status` (and its storage-faults gauge) said nothing was wrong. Now the failed copy
    is a fault of the object here, until a copy of it is written."""
    with tiny_tmpfs(tmp_path / "m1", "1m") as m1_dir:
        m1 = start_node("server", "m1", "--data", str(m1_dir / "data"))
        try:
            with WireClient(m1.port) as sql, WireClient(m1.port) as peer:
                sql.ok("manamboara tahiry s;")
                sql.ok("ampiasao s;")
                sql.ok("manamboara tabilao t (id ISA(null,null));")
                mine = tmp_path / "mine"
                lock = DirectoryLock(mine.mkdir() or mine)
                assert deliver_shipment(mine, TABLE, shipment_of(
                    ask(peer, fetch_request(TABLE, None, False))), lock)
                Store(mine).append_rows("s", "t", [{"name": "id", "domain": []}],
                                        [[n] for n in range(40_000)])
                filler = fill_up(m1_dir)
                outgoing = plan_shipment(mine, TABLE, version_of(m1_dir / "data", TABLE))
                refused = peer.run(b"".join(ship_requests(TABLE, outgoing)).decode(),
                                   len(ship_requests(TABLE, outgoing)))[-1]
                assert not refused.ok
                faults = sql.status()["storage_faults"]
                assert [(f["object"], f["operation"]) for f in faults] == [(TABLE, "write")]
                assert "replication: No space left on device" in faults[0]["reason"]
                filler.unlink()
                assert ask_all(peer, ship_requests(TABLE, outgoing))["result"] == "moved"
                assert sql.status()["storage_faults"] == []
        finally:
            m1.stop()


def test_a_peer_only_server_answers_its_peers_and_runs_no_statement(start_node, tmp_path):
    """`--peer-only` (nodes/server/peer_only.py): a moved server's old directory, served to
    the other machines' servers: versions, fetch and a fence for any asker, no statement."""
    data = tmp_path / "m3"
    Session(Store(data)).execute("manamboara tahiry s; ampiasao s; "
                                 "manamboara tabilao t (id ISA(null,null)); "
                                 "manampia ao@ t sanda (1);")
    old = start_node("server", "m3~old", "--data", str(data), "--peer-only")
    with WireClient(old.port) as peer, WireClient(old.port) as sql:
        assert ask(peer, hello_request("m2"))["node"] == "m3~old"
        [version] = ask(peer, versions_request([TABLE])).values()
        assert version["change"] == version_of(data, TABLE).change
        assert ask(peer, fence_request(30, 0)) == {"held": True}, "any asker is fenced for"
        assert not DirectoryLock(data).try_acquire(), "the lease holds the directory's lock"
        assert ask(peer, release_request()) == {"held": False}
        [refused] = sql.run("ampiasao s;")
        assert not refused.ok and "`.peer`" in refused.message
        assert sql.run(".ping;")[0].message.startswith("PONG m3~old")
