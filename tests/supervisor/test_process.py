"""ChildProcess's copy of a node's output: one timestamp format, and the last error line."""

import asyncio
import sys

from supervisor.logfiles import RotatingLog
from supervisor.process import ChildProcess, error_line, uniform_stamp
from tests.supervisor.test_keeper import STAMP

# Logs with Python logging's default stamp (a comma before the milliseconds),
# prints a plain line, then dies of an exception.
DYING = r"""
import logging, sys
logging.basicConfig(format="%(asctime)s n1 %(levelname)s %(name)s: %(message)s", level="INFO")
log = logging.getLogger("nodes.test")
log.info("starting")
log.error("backends file missing")
print("a plain print", flush=True)
raise ValueError("boom")
"""


def test_node_output_is_stamped_one_way_and_its_last_error_kept(tmp_path):
    log = RotatingLog(tmp_path / "n1.log")
    script = tmp_path / "dying.py"
    script.write_text(DYING)

    async def scenario():
        child = ChildProcess([sys.executable, str(script)], log)
        await child.start()
        assert await child.wait() == 1
        return child
    child = asyncio.run(scenario())
    log.close()
    lines = (tmp_path / "n1.log").read_text().splitlines()
    assert all(STAMP.match(line) for line in lines), lines
    assert any(line.endswith(" n1 INFO nodes.test: starting") for line in lines)
    assert lines[-1].endswith(" ValueError: boom")
    assert child.last_error == "ValueError: boom"


def test_error_lines():
    stamped = "2026-12-02 15:57:49,380 lb ERROR nodes.balancer.node: backends file missing"
    assert error_line(stamped) == "ERROR nodes.balancer.node: backends file missing"
    assert error_line("2026-12-02 15:57:49,380 lb INFO nodes.balancer.node: ok") is None
    assert error_line("Traceback (most recent call last):") is None
    assert error_line('  File "x.py", line 3, in <module>') is None
    assert error_line("             ^^^^^^^^^^^") is None
    assert error_line("") is None
    assert error_line("balancer: cannot listen on 127.0.0.1:1: address already in use\n") == (
        "balancer: cannot listen on 127.0.0.1:1: address already in use")
    assert uniform_stamp(stamped).startswith("2026-12-02 15:57:49.380 lb ERROR")
    assert uniform_stamp("2026-12-02T15:57:49.380 x") == "2026-12-02 15:57:49.380 x"
