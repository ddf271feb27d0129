"""Cluster.status: each running node's own `.status;` (its alerts) asked once per row."""

import asyncio
import json
import logging

from nodes.protocol import encode_message
from supervisor.cluster import Cluster
from supervisor.topology import parse_topology
from tests.conftest import free_port
from tests.integration.supervisorkit import cluster_yaml


async def stand_in_node(port: int, answer: dict, asked: list[bytes]) -> asyncio.Server:
    """Answers every admin request with `answer` (as `.status;` is answered: one JSON line)."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b";")
        asked.append(request)
        writer.write(encode_message(json.dumps(answer)))
        await writer.drain()
        writer.close()
    return await asyncio.start_server(serve, "127.0.0.1", port)


def test_alerts_of_every_running_node_are_in_its_row(tmp_path):
    ports = {name: free_port() for name in ("control", "m1", "m2", "m3", "lb", "proxy")}
    path = tmp_path / "topology.yaml"
    path.write_text(cluster_yaml(ports))
    cluster = Cluster(parse_topology(path.read_text(), path, {}), logging.getLogger("test"))

    async def scenario():
        asked: list[bytes] = []
        servers = [await stand_in_node(ports["lb"], {"alerts": ["m2 shunned 3 times"]}, asked),
                   await stand_in_node(ports["proxy"], {"hits": 3, "misses": 1,
                                                        "alerts": ["cache full"]}, asked)]
        try:
            rows = {}
            for node in ("m1", "lb", "proxy"):
                row = {"node": node, "kind": cluster.topology.nodes[node].kind,
                       "state": "RUNNING" if node != "m1" else "FATAL"}
                rows[node] = {**row, **await cluster._node_extra(row, {})}
        finally:
            for server in servers:
                server.close()
        return rows, asked
    rows, asked = asyncio.run(scenario())
    assert rows["lb"]["alerts"] == ["m2 shunned 3 times"]
    assert rows["proxy"]["alerts"] == ["cache full"] and rows["proxy"]["hit_ratio"] == 0.75
    assert rows["m1"]["alerts"] == [] and rows["m1"]["storage_faults"] is None  # not running
    assert asked == [b".status;", b".status;"]  # once per running node


def test_a_balancer_still_awaiting_a_removed_servers_answers_still_lists_it(tmp_path):
    """The reload stops a removed server only once no balancer lists it: as a backend, or
    as one a reload removed whose answers are still on their way (`retiring`)."""
    ports = {name: free_port() for name in ("control", "m1", "m2", "m3", "lb", "proxy")}
    path = tmp_path / "topology.yaml"
    path.write_text(cluster_yaml(ports))
    cluster = Cluster(parse_topology(path.read_text(), path, {}), logging.getLogger("test"))

    async def listed(answer: dict) -> set[str] | None:
        server = await stand_in_node(ports["lb"], answer, [])
        try:
            return await cluster._backends_listed(cluster.topology.nodes["lb"])
        finally:
            server.close()

    assert asyncio.run(listed({"backends": {"m1": {}}, "retiring": {"m2": 1}})) == {"m1", "m2"}
    assert asyncio.run(listed({"backends": {"m1": {}}, "retiring": {}})) == {"m1"}
    assert asyncio.run(listed({"backends": {"m1": {}}})) == {"m1"}   # a balancer before it
    assert asyncio.run(listed({"clients": 0})) is None
