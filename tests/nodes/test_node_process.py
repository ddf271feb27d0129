"""What every node process gets from `run_node` (nodes/runtime/node_process.py).

Run in a child Python (freezing is process-wide; the test process keeps
its collector as it is): the objects that exist when the node starts are
frozen out of the cyclic collector's scans, so that no full collection of a
relay rescans its modules (11-17 ms each, stalling every connection).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc
from nodes.runtime.node_process import run_node
assert gc.get_freeze_count() == 0
async def main():
    return gc.get_freeze_count(), len(gc.get_objects())
frozen, scanned = run_node(main())
print(frozen, scanned)
"""


def test_a_node_starts_with_its_start_up_objects_frozen():
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    frozen, scanned = map(int, done.stdout.split())
    # Everything imported so far is frozen; what the collector still scans is
    # what the loop made since (a few hundred objects), not the modules.
    assert frozen > 10_000, done.stdout
    assert scanned < frozen / 10, done.stdout
