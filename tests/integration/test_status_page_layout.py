"""The status page with what a real class's topology may hold, in a real browser.

The supervisor's HTTP server (supervisor/web/server.py) runs on a real
socket in a thread of its own, over a sampler stand-in that publishes views
by hand (the figures are the test's, the page and the browser are real):
node ids as long as the topology allows (64 characters), a long topology
path and a reload message naming such a node, at a phone's width; and a
RUNNING node whose health probes fail. Skips with one line when chromium or
its driver is missing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from supervisor.topology import HttpSettings
from supervisor.web.server import WebServer
from supervisor.web.view import ClusterView
from tests.conftest import free_port, wait_until
from tests.integration.test_status_page import TOO_WIDE
from tests.integration.webkit import browser
from tests.supervisor.test_web_server import FakeSampler

LONG = "server_with_a_very_long_name_for_the_class_of_2026_databases_ab"   # 64 characters


def row(node: str, kind: str = "server", **extra) -> dict:
    return {"node": node, "kind": kind, "address": "127.0.0.1:35052", "pid": 4242,
            "state": "RUNNING", "uptime_s": 70.0, "restarts": 0, "manual_restarts": 0,
            "probe_ms": 0.9, "probe_failures": 0, "last_exit": None, **extra}


def cluster_view(taken_at: float, statements: int) -> ClusterView:
    return ClusterView(
        taken_at=taken_at,
        supervisor={"pid": 1, "uptime_s": 80.0,
                    "topology": "/home/mpampianatra/courses/databases-2026/cluster/topology.yaml",
                    "last_reload": {"ok": True, "at": taken_at, "message": f"added {LONG}"}},
        rows=[row("m1", probe_ms=None, probe_failures=2, probe_fall=3,
                  probe_error="no answer within 1000 ms"),
              row(LONG), row("lb", "balancer")],
        nodes={"m1": {"statements": statements}, LONG: {"statements": statements * 2},
               "lb": {"backends": {"m1": {"state": "ONLINE"}, LONG: {"state": "ONLINE"}}}})


class Serving(threading.Thread):
    """The page's HTTP server in an event loop of its own, until `stop`."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sampler = FakeSampler.__new__(FakeSampler)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.server: WebServer | None = None

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            FakeSampler.__init__(self.sampler)   # its asyncio.Event in this loop
            self.server = WebServer(HttpSettings(port=self.port), self.sampler, None,  # type: ignore[arg-type]
                                    logging.getLogger("test-page-layout"))
            await self.server.start()
            self.ready.set()
        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def publish(self, view: ClusterView) -> None:
        self.loop.call_soon_threadsafe(self.sampler.publish, view)

    def stop(self) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.join(10)


READ_INFO = """
const headers = Array.from(document.querySelectorAll("#nodes thead th")).map((th) => th.textContent);
const cell = (tr, name) => tr.cells[headers.indexOf(name)].textContent;
return Object.fromEntries(Array.from(document.querySelectorAll("#nodes tbody tr"))
  .map((tr) => [tr.dataset.node, {probe: cell(tr, "probe"), info: cell(tr, "info")}]));
"""


def test_long_node_names_fit_a_phone_and_failing_probes_are_shown():
    """Node ids of 64 characters (allowed) stay within a phone's screen but for the
    table's own scroller; a RUNNING node whose probes fail says so (bug: the page showed
    its last good probe time and nothing of the failing ones)."""
    driver = browser(390, 844)
    serving = Serving()
    serving.start()
    try:
        assert serving.ready.wait(10)
        now = time.time()
        serving.publish(cluster_view(now - 3, 10))
        driver.get(f"http://127.0.0.1:{serving.port}/")
        for second in range(1, 4):   # chart points: a legend per server
            serving.publish(cluster_view(now - 3 + second, 10 + 5 * second))
        wait_until(lambda: LONG in driver.find_element("css selector",
                                                       '.legend[data-for="throughput"]').text,
                   10, "the long name in the throughput chart's legend")
        wait_until(lambda: LONG in driver.find_element("id", "reload").text, 5,
                   "the last topology edit")
        assert driver.execute_script(TOO_WIDE) == []
        shown = driver.execute_script(READ_INFO)
        assert shown["m1"]["probe"] == "-"
        assert shown["m1"]["info"].startswith("probe failed 2/3: no answer within 1000 ms")
        assert "probe failed" not in shown[LONG]["info"]
    finally:
        driver.quit()
        serving.stop()


def test_servers_still_handing_over_are_shown_then_go():
    """A removed server whose newest copies have not all landed: its directory holds writes
    nobody else has. `status` says so above its table; the page says it too, and stops
    saying it once they land."""
    driver = browser(1280, 900)
    serving = Serving()
    serving.start()
    try:
        assert serving.ready.wait(10)
        pending = cluster_view(time.time(), 10)
        pending.supervisor["handing_over"] = {"m3": "/srv/tahiry/data/m3"}
        serving.publish(pending)
        driver.get(f"http://127.0.0.1:{serving.port}/")
        shown = driver.find_element("id", "handing-over")
        wait_until(lambda: "handing over: m3 (/srv/tahiry/data/m3)" in shown.text, 10,
                   "the pending hand over on the page")
        serving.publish(cluster_view(time.time(), 11))   # landed: none pending
        wait_until(lambda: not shown.is_displayed(), 10, "the line to go")
    finally:
        driver.quit()
        serving.stop()
