"""nodes/runtime/outbox.py: order kept, memory capped, the rest spilled and read back."""

from __future__ import annotations

import random

from nodes.runtime.outbox import Outbox


def drain(outbox: Outbox) -> bytes:
    out = bytearray()
    while (chunk := outbox.take()) is not None:
        out += chunk
    return bytes(out)


def test_everything_comes_back_in_order_whatever_the_sizes():
    rng = random.Random(7)
    for _ in range(50):
        outbox = Outbox(memory_cap=rng.choice([1, 10, 1000]), chunk=rng.choice([1, 7, 512]))
        sent = bytearray()
        received = bytearray()
        for _ in range(rng.randint(1, 20)):
            data = rng.randbytes(rng.randint(0, 3000))
            outbox.add(memoryview(data) if rng.random() < 0.5 else data)
            sent += data
            assert outbox.in_memory <= outbox.memory_cap
            if rng.random() < 0.3:
                for _ in range(rng.randint(0, 5)):
                    chunk = outbox.take()
                    if chunk is None:
                        break
                    assert len(chunk) <= outbox.chunk
                    received += chunk
        received += drain(outbox)
        assert bytes(received) == bytes(sent)
        assert len(outbox) == 0


def test_a_big_answer_keeps_only_the_cap_in_memory():
    outbox = Outbox(memory_cap=1000, chunk=100)
    big = bytes(range(256)) * 400
    outbox.add(memoryview(big)[5:])
    assert outbox.in_memory == 1000 and outbox.spilled_bytes == len(big) - 5 - 1000
    assert len(outbox) == len(big) - 5
    assert drain(outbox) == big[5:]
    outbox.add(b"after")     # the file is gone once read: memory again
    assert outbox.spilled_bytes == len(big) - 5 - 1000 and drain(outbox) == b"after"
    outbox.add(big)
    outbox.close()
    assert len(outbox) == 0 and outbox.take() is None
