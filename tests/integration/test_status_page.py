"""The status page in a real browser (headless Debian chromium through Selenium).

Open the page of a supervised cluster under a small workload: the node table
lists every node RUNNING; kill -9 a server: its row leaves RUNNING within a
few seconds and comes back with one restart; the charts have points; at a
phone's width nothing but the table's own scroller is wider than the screen.
The screenshot is saved beside the test's files, and over docs/status-page.png
(the README's) when TAHIRY_UPDATE_SCREENSHOT=1. Skips with one line when
chromium or its driver is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time

import pytest

from tests.conftest import REPO_ROOT, free_port, wait_until
from tests.integration.supervisorkit import run_session
from tests.integration.test_metrics import slow_backoff
from tests.integration.webkit import browser, fetch, web_yaml

SCREENSHOT = REPO_ROOT / "docs" / "status-page.png"
CHANGE_SEEN_WITHIN_S = 5.0
SETTLE_S = 1.1   # past the proxy's default --settle-ms


class Workload(threading.Thread):
    """Inserts and repeated reads through the proxy until stopped; errors are expected
    while a server is down (the workload only has to keep the charts moving)."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.stopping = threading.Event()
        self.done = 0
        self.setup: list[str] = []

    def run(self) -> None:
        self.setup = run_session(self.port, [
            "manamboara tahiry lab;", "ampiasao lab;",
            "manamboara tabilao mpianatra (id ISA(0,1000000), anarana LAHATSORATRA(null,null));"])
        next_id = 0
        while not self.stopping.is_set():
            statements = ["ampiasao lab;"]
            for _ in range(10):
                next_id += 1
                statements.append(f"manampia ao@ mpianatra sanda ({next_id}, 'Rasoa {next_id}');")
            # Another connection reads the same row again and again once the writes
            # settled (the proxy caches no read within its settle time of a write).
            reads = ["ampiasao lab;"] + ["alaivo anarana ao@ mpianatra rehefa id = 1;"] * 30
            try:
                run_session(self.port, statements)
                self.done += len(statements)
                if self.stopping.wait(SETTLE_S):
                    return
                run_session(self.port, reads)
                self.done += len(reads)
            except OSError:
                pass


# Read in one script: the page rebuilds its rows at each update, so elements
# found one call earlier may be gone.
READ_TABLE = """
const headers = Array.from(document.querySelectorAll("#nodes thead th")).map((th) => th.textContent);
const cell = (tr, name) => tr.cells[headers.indexOf(name)].textContent;
return Array.from(document.querySelectorAll("#nodes tbody tr")).map((tr) => ({
  node: tr.dataset.node, state: tr.dataset.state, restarts: cell(tr, "restarts"),
  manual: cell(tr, "manual"), last_error: cell(tr, "last error")}));
"""


# Elements reaching past the window's right edge, but for the table's own scroller.
TOO_WIDE = """
return Array.from(document.querySelectorAll("body *"))
  .filter((e) => !e.parentElement.closest(".scroll")
                 && e.getBoundingClientRect().right > window.innerWidth + 1)
  .map((e) => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right)
              + " > " + window.innerWidth);
"""


def rows(driver) -> dict[str, dict]:
    """The node table as the page shows it: node -> state, restarts, manual, last error."""
    return {row.pop("node"): row for row in driver.execute_script(READ_TABLE)}


@pytest.mark.slow
def test_the_page_shows_every_node_and_a_killed_server_live(cluster, tmp_path):
    driver = browser()
    workload: Workload | None = None
    try:
        cluster.ports["http"] = free_port()
        cluster.write(text=slow_backoff(web_yaml(cluster.ports)))
        assert cluster.up().returncode == 0, cluster.supervisor_log()
        base = f"http://127.0.0.1:{cluster.ports['http']}/"
        driver.get(base)
        wait_until(lambda: rows(driver).keys() == {"m1", "m2", "lb", "proxy"}
                   and all(r["state"] == "RUNNING" for r in rows(driver).values()),
                   10, "every node RUNNING in the page's table")
        assert driver.find_element("id", "live").text == "live"

        workload = Workload(cluster.ports["proxy"])
        workload.start()
        # A README screenshot shows a minute of charts; the test needs a dozen points.
        points = 60 if os.environ.get("TAHIRY_UPDATE_SCREENSHOT") == "1" else 12
        wait_until(lambda: len(json.loads(fetch(base + "api/status"))["history"]) >= points
                   and workload.done > 200, points * 2.5, f"{points} chart points under load")
        assert not any("Hadisoana" in answer for answer in workload.setup), workload.setup

        m1_pid = cluster.nodes()["m1"]["pid"]
        os.kill(m1_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: rows(driver)["m1"]["state"] != "RUNNING", CHANGE_SEEN_WITHIN_S,
                   "m1's row leaving RUNNING")
        assert time.monotonic() - killed_at < CHANGE_SEEN_WITHIN_S
        assert "SIGKILL" in rows(driver)["m1"]["last_error"]
        assert rows(driver)["m2"]["state"] == "RUNNING"
        assert driver.find_elements("css selector", "#throughput polyline")
        shot = tmp_path / "status-page.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        if os.environ.get("TAHIRY_UPDATE_SCREENSHOT") == "1":
            shutil.copyfile(shot, SCREENSHOT)

        wait_until(lambda: rows(driver)["m1"] == {**rows(driver)["m1"], "state": "RUNNING",
                                                  "restarts": "1"},
                   20, "m1 back RUNNING with one restart")

        driver.set_window_size(390, 844)   # a phone
        wait_until(lambda: driver.execute_script(TOO_WIDE) == [], 5,
                   "nothing wider than a phone's screen")
        assert driver.find_element("css selector", 'tr[data-node="m1"]').is_displayed()
        assert driver.save_screenshot(str(tmp_path / "status-page-phone.png"))
    finally:
        if workload is not None:
            workload.stopping.set()
            workload.join(timeout=10)
        driver.quit()


def test_the_page_counts_a_restart_by_hand_apart_from_a_crash(cluster):
    """The page showed one `restarts` column: a node the operator restarted ten times
    looked like one that crashed ten times."""
    driver = browser()
    try:
        cluster.ports["http"] = free_port()
        cluster.write(text=slow_backoff(web_yaml(cluster.ports)))
        assert cluster.up().returncode == 0, cluster.supervisor_log()
        driver.get(f"http://127.0.0.1:{cluster.ports['http']}/")
        wait_until(lambda: rows(driver).keys() == {"m1", "m2", "lb", "proxy"}
                   and all(r["state"] == "RUNNING" for r in rows(driver).values()),
                   10, "every node RUNNING in the page's table")
        assert cluster.cli("restart", "m2", str(cluster.topology)).returncode == 0
        os.kill(cluster.nodes()["m1"]["pid"], signal.SIGKILL)
        wait_until(lambda: {node: (r["state"], r["restarts"], r["manual"])
                            for node, r in rows(driver).items() if node in ("m1", "m2")}
                   == {"m1": ("RUNNING", "1", "0"), "m2": ("RUNNING", "0", "1")},
                   20, "m1 restarted after its crash, m2 by hand, each counted so")
    finally:
        driver.quit()
