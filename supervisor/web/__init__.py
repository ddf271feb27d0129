"""The supervisor's window on the cluster: Prometheus `/metrics` and a live status page.

DESIGN. One HTTP server (aiohttp) runs in the supervisor's event loop when
the topology's `http:` section enables it (on by default, 127.0.0.1:3946;
off loopback it asks for the topology's secret). It is read-only and off
the request path:

    sampler.py   every second (at once when a keeper's state changes) one
                 `ClusterView`: the status rows of `./tahiry status`, each
                 RUNNING node's `.status;` counters, the replicator's figures
    view.py      `ClusterView` (plain data) and `History` (chart points of
                 the last ten minutes: throughput, replication lag, hit ratio)
    metrics.py   `ClusterCollector`, a prometheus_client collector over the
                 latest view; the text format is prometheus_client's
    server.py    the aiohttp app: /, /static/*, /metrics, /api/status, /events (SSE)
    static/      the page's own HTML, JS and CSS (no CDN, no framework)

Scrapes and pages read the latest view: they never probe a node. The nodes
keep their counters as plain integers and fixed-bucket histograms
(nodes/server/latency.py) and answer `.status;` from them. When the HTTP
server cannot bind, the supervisor logs it and runs the cluster all the
same. docs/OBSERVABILITY.md is the operator's guide (every metric family).
"""

from __future__ import annotations

from ..topology import Topology

# run/http: the page's address while a supervisor serves it (written when it
# listens, removed when it stops), for `./tahiry status`.
ADDRESS_FILE = "http"


def page_address(topology: Topology) -> str | None:
    """The status page's URL while this topology's supervisor serves it, else None.

    Read from run/http, which the supervisor writes once it listens and
    removes when it stops; a supervisor killed with SIGKILL leaves it behind,
    so a caller that knows the supervisor is gone (no answer on the control
    port) should not show it. The control port's `status` answer carries the
    same address as `supervisor.page`.
    """
    if not topology.http.enabled:
        return None
    try:
        address = (topology.supervisor.run / ADDRESS_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return address or None
