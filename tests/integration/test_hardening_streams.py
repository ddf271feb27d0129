"""Clients that do not read their answers, and secret guessers, against real servers (issue 14).

- Responses are streamed with backpressure: clients that ask for a big
  answer and never read it pin at most the documented cap each
  (nodes/runtime/outbox.py MEMORY_CAP_BYTES) of the server's memory, and
  other clients are served meanwhile.
- Guessing the secret: wrong guesses from many parallel connections are
  evaluated at the node-wide rate (docs/SECURITY.md), the throttle logged
  once, and the right secret still gets in.
"""

from __future__ import annotations

import pytest

from nodes.protocol.auth import AuthRates
from nodes.runtime.outbox import HELD_BYTES_BOUND, MEMORY_CAP_BYTES
from tests.integration.hardening_scenarios import auth_guesses, slow_readers

READERS = 3
# What a non-reading client may pin: the outbox's memory cap; the slack covers
# the allocator and the kernel's socket buffers, far below one answer (20 MB).
SLACK_MB = 16


@pytest.mark.slow
def test_clients_that_never_read_a_big_answer_pin_at_most_the_cap(start_node):
    figures = slow_readers(start_node, rows_a=2000, rows_b=1000, readers=READERS)
    assert figures.answer_mb > 15, figures
    pinned_mb = figures.settled_mb - figures.base_mb
    assert pinned_mb < READERS * MEMORY_CAP_BYTES / (1 << 20) + SLACK_MB, figures
    # The server's own count: each reader holds at most its outbox's cap in
    # memory and what the transport took; the rest of its answer waits on disk.
    assert figures.slow_readers == READERS, figures
    assert figures.unsent_in_memory_mb <= READERS * HELD_BYTES_BOUND / (1 << 20), figures
    assert figures.unsent_spilled_mb > READERS * (figures.answer_mb / 2), figures
    assert figures.released, figures
    assert figures.other_served_s is not None and figures.other_served_s < 5, figures


@pytest.mark.slow
def test_guessing_the_secret_is_held_to_the_node_wide_rate(start_node):
    per_second, gets_in = auth_guesses(start_node, seconds=3.0, connections=200)
    rates = AuthRates()
    # The first failures come before the throttle starts (about one second's worth).
    assert per_second <= rates.global_failures_per_s * 2, per_second
    assert gets_in
    log = start_node.nodes[0].log_text()
    assert log.count("failed authentications faster than") == 1, log[-3000:]
