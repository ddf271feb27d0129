"""The `http:` section of the topology, and the status page's HTTP server on a real
socket (aiohttp in this test's event loop) over a sampler stand-in: routes, the
secret off loopback, the event stream, `page_address`."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import urllib.error
import urllib.request

from supervisor.topology import DEFAULT_HTTP_PORT, HttpSettings, parse_topology
from supervisor.web import ADDRESS_FILE, page_address
from supervisor.web.server import WebServer, address_of, authorized
from supervisor.web.view import ClusterView, History
from tests.conftest import free_port
from tests.supervisor.topologykit import errors_of, parse

NODES = """\
supervisor:
  control_port: 4947
nodes:
  m1: {kind: server, host: 127.0.0.1, port: 4948, data: data/m1}
"""
SECRET = "a-secret-of-twenty-chars"


def test_http_defaults_to_loopback_below_the_control_port():
    """3946 for the default topology's 3947; another cluster of the machine its own (two
    clusters both wanted 3946)."""
    topology = parse(NODES)
    assert topology.http == HttpSettings(enabled=True, host="127.0.0.1", port=4946)
    assert not topology.http.needs_secret
    # A node has that port: the fixed default.
    beside = parse(NODES.replace("port: 4948", "port: 4946"))
    assert beside.http.port == DEFAULT_HTTP_PORT


def test_http_section_is_read_and_checked():
    assert parse(NODES + "http:\n  port: 5000\n  enabled: false\n").http.enabled is False
    assert errors_of(NODES + "http:\n  port: 99999\n") == [
        "topology.yaml line 6: http.port: must be between 1 and 65535, not 99999"]
    assert errors_of(NODES + "http:\n  enabled: yes please\n") == [
        "topology.yaml line 6: http.enabled: must be true or false, not the string 'yes please'"]
    assert errors_of(NODES + "http:\n  tls: true\n")[0].startswith(
        "topology.yaml line 6: http.tls: unknown key (expected one of: enabled, host, port)")
    assert errors_of(NODES + "http: 8080\n") == [
        "topology.yaml line 5: http: must be a mapping, not the integer 8080"]


def test_http_port_may_not_be_a_node_port_or_the_control_port():
    assert errors_of(NODES + "http:\n  port: 4948\n") == [
        "topology.yaml line 6: http.port: port 4948 on 127.0.0.1 is already used by node 'm1'"]
    taken = NODES.replace("port: 4948", f"port: {DEFAULT_HTTP_PORT}") + (
        "  m2: {kind: server, host: 127.0.0.1, port: 4946, data: data/m2}\n")
    assert errors_of(taken) == [
        f"topology.yaml line 1: http.port: port {DEFAULT_HTTP_PORT} on 127.0.0.1 is already "
        f"used by node 'm1' (the default; set http.port)"]
    assert "supervisor.control_port" in errors_of(NODES + "http:\n  port: 4947\n")[0]
    # Disabled, its port is not taken.
    assert parse(NODES + "http:\n  port: 4948\n  enabled: false\n").http.enabled is False


def test_http_off_loopback_needs_a_strong_secret():
    exposed = NODES + "http:\n  host: 0.0.0.0\n"
    assert "needs a 'secret' in the topology" in errors_of(exposed)[0]
    assert "needs at least 16 characters" in errors_of(exposed + "secret: short-one\n")[0]
    topology = parse(exposed + f"secret: {SECRET}\n")
    assert topology.http.needs_secret and topology.secret == SECRET


def test_authorized_takes_bearer_or_basic_with_the_secret():
    basic = base64.b64encode(f"prometheus:{SECRET}".encode()).decode()
    assert authorized(f"Bearer {SECRET}", SECRET)
    assert authorized(f"Basic {basic}", SECRET)
    assert not authorized(f"Bearer {SECRET}x", SECRET)
    assert not authorized(None, SECRET)
    assert not authorized("Basic not-base64!", SECRET)
    assert not authorized(f"Token {SECRET}", SECRET)


def test_address_and_page_address(tmp_path):
    assert address_of(HttpSettings(host="::1", port=80)) == "http://[::1]:80/"
    topology = parse_topology(NODES + "http:\n  port: 5000\n", tmp_path / "topology.yaml", {})
    assert page_address(topology) is None   # no supervisor serves it
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ADDRESS_FILE).write_text("http://127.0.0.1:5000/\n")
    assert page_address(topology) == "http://127.0.0.1:5000/"
    disabled = parse_topology(NODES + "http:\n  enabled: false\n", tmp_path / "topology.yaml", {})
    assert page_address(disabled) is None


class FakeSampler:
    """What WebServer reads of a Sampler: the latest view, its history, new views."""

    def __init__(self):
        self.latest: ClusterView | None = None
        self.history = History()
        self.generation = 0
        self.running = True
        self._changed = asyncio.Event()

    def publish(self, cluster_view: ClusterView) -> None:
        self.latest = cluster_view
        self.history.add(cluster_view)
        self.generation += 1
        self._changed.set()

    async def changed(self, seen: int, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        except TimeoutError:
            return False
        self._changed.clear()
        return self.generation != seen


def a_view(taken_at: float, state: str = "RUNNING") -> ClusterView:
    return ClusterView(taken_at=taken_at, supervisor={"pid": 1, "uptime_s": 1.0},
                       rows=[{"node": "m1", "kind": "server", "address": "127.0.0.1:1",
                              "pid": 5, "state": state, "uptime_s": 1.0, "restarts": 0,
                              "probe_ms": 1.0, "last_exit": None}],
                       nodes={"m1": {"statements": 3}})


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def serving(host: str = "127.0.0.1", secret: str | None = None):
    sampler = FakeSampler()
    settings = HttpSettings(host=host, port=free_port())
    server = WebServer(settings, sampler, secret, logging.getLogger("test"))  # type: ignore[arg-type]
    return server, sampler, f"http://127.0.0.1:{settings.port}"


def test_routes_serve_the_page_metrics_and_json():
    async def scenario():
        server, sampler, base = serving()
        await server.start()
        try:
            sampler.publish(a_view(100.0))
            status, headers, body = await asyncio.to_thread(get, base + "/")
            assert status == 200 and b"static/status.js" in body
            assert headers["Content-Type"].startswith("text/html")
            status, headers, body = await asyncio.to_thread(get, base + "/static/status.js")
            assert status == 200 and headers["Content-Type"].startswith("text/javascript")
            assert (await asyncio.to_thread(get, base + "/static/../server.py"))[0] == 404
            status, headers, body = await asyncio.to_thread(get, base + "/metrics")
            assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
            assert b'tahiry_node_up{kind="server",node="m1"} 1.0' in body
            status, _, body = await asyncio.to_thread(get, base + "/api/status")
            answer = json.loads(body)
            assert answer["nodes"][0]["node"] == "m1" and len(answer["history"]) == 1
        finally:
            await server.stop()
    asyncio.run(scenario())


def test_off_loopback_every_route_asks_for_the_secret():
    async def scenario():
        server, sampler, base = serving(host="0.0.0.0", secret=SECRET)
        await server.start()
        try:
            sampler.publish(a_view(100.0))
            for path in ("/", "/metrics", "/api/status", "/events"):
                status, headers, _ = await asyncio.to_thread(get, base + path)
                assert status == 401 and headers["WWW-Authenticate"].startswith("Basic"), path
            status, _, body = await asyncio.to_thread(
                get, base + "/metrics", {"Authorization": f"Bearer {SECRET}"})
            assert status == 200 and b"tahiry_node_up" in body
        finally:
            await server.stop()
    asyncio.run(scenario())


def test_the_event_stream_sends_the_status_then_each_new_view():
    async def scenario():
        server, sampler, base = serving()
        await server.start()
        try:
            sampler.publish(a_view(100.0))
            reader, writer = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
            writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            events = []

            async def next_event() -> tuple[str, dict]:
                name = ""
                while True:
                    line = (await reader.readline()).decode().strip()
                    if line.startswith("event: "):
                        name = line[len("event: "):]
                    elif line.startswith("data: ") and name:
                        return name, json.loads(line[len("data: "):])

            events.append(await asyncio.wait_for(next_event(), 5))
            sampler.publish(a_view(101.0, state="BACKOFF"))
            events.append(await asyncio.wait_for(next_event(), 5))
            writer.close()
            assert events[0][0] == "status" and events[0][1]["nodes"][0]["state"] == "RUNNING"
            assert events[1][0] == "view" and events[1][1]["nodes"][0]["state"] == "BACKOFF"
            assert events[1][1]["point"]["t"] == 101.0
        finally:
            await server.stop()
    asyncio.run(scenario())


def raw_get(port: int, request: bytes) -> bytes:
    """`request` sent as bytes (what urllib would not send); the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_an_authorization_header_of_odd_bytes_is_refused_not_an_internal_error():
    """Bytes that are not UTF-8 in the header (aiohttp reads them as surrogates) made
    `authorized` raise: a 500 and a traceback in the supervisor's log, not a 401."""
    assert not authorized("Bearer \udcff\udcfe", SECRET)
    assert not authorized("Basic \udcff", SECRET)

    async def scenario():
        server, _, _ = serving(host="0.0.0.0", secret=SECRET)
        await server.start()
        try:
            for header in (b"Bearer \xff\xfe", b"Basic \xff", b"Bearer " + SECRET.encode()
                           + b"\xe9"):
                answer = await asyncio.to_thread(
                    raw_get, server.settings.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                    b"Authorization: " + header + b"\r\nConnection: close\r\n\r\n")
                assert answer.startswith(b"HTTP/1.1 401 "), (header, answer[:200])
        finally:
            await server.stop()
    asyncio.run(scenario())
