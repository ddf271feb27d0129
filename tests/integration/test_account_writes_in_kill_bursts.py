"""Account statements through the balancer while servers are killed -9 in a burst.

Two servers with accounts, each certifying its writes against the other's
directory (`--peer`), behind a balancer. m1 is killed and started again;
before the balancer trusts it again (`--rise` good probes in a row: here 3 s
of them), m2 is killed too. m1 is alive, holds every file and certifies what
it writes: an account statement must land there, not be refused with "no
server can write now" (148 refusals in one run of kill bursts).
"""

from __future__ import annotations

import pytest

from tests.conftest import wait_until
from tests.integration.test_accounts_wire import ADMIN_ENV, TEACHER, TEACHER_PW, logged_in
from tests.integration.wire import WireClient

pytestmark = pytest.mark.slow  # kills and health transitions


def _health(balancer, backend: str) -> dict:
    with WireClient(balancer.port) as probe:
        return probe.status()["backends"][backend]


def test_an_account_statement_lands_on_the_survivor_the_balancer_does_not_trust_yet(start_node):
    servers = {}
    for name, other in (("m1", "m2"), ("m2", "m1")):
        servers[name] = start_node("server", name, "--data", f"data/{name}", "--accounts",
                                   "--peer", f"{other}=data/{other}", env=ADMIN_ENV)
    m1, m2 = servers["m1"], servers["m2"]
    lb = start_node("balancer", "lb", "--backend", f"m1=127.0.0.1:{m1.port}",
                    "--backend", f"m2=127.0.0.1:{m2.port}", "--probe-interval-ms", "100",
                    "--rise", "30")
    with logged_in(lb.port, TEACHER, TEACHER_PW) as teacher:
        teacher.ok('manamboara mpampiasa ana tenimiafina "Ana-pass-3xK9";')

        m1.kill9()
        wait_until(lambda: _health(lb, "m1")["state"] == "OFFLINE", 10, "m1 OFFLINE")
        m1 = start_node.restart(m1)
        # The balancer has seen m1 answer again, and does not trust it yet.
        wait_until(lambda: _health(lb, "m1")["consecutive_successes"] >= 1, 10,
                   "a good probe of m1")
        m2.kill9()
        assert _health(lb, "m1")["state"] == "OFFLINE"

        answer = teacher.one('manamboara mpampiasa bob tenimiafina "Bob-pass-8Lm2";')
        assert answer.ok, answer.message
        answer = teacher.one("omeo bob zo mamaky ao@ tsymisy;")   # a grant reaches it too
        assert "Tsy misy mpizara afaka manoratra" not in answer.message, answer.message
    # Written (and durable) on the survivor.
    with logged_in(m1.port, TEACHER, TEACHER_PW) as direct:
        names = [row[0] for row in direct.rows("asehoy ny mpampiasa;")]
        assert {"ana", "bob"} <= set(names)
