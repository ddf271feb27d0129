"""supervisor/thread_handles.py: a handle per thread and server, replaced when its target changes."""

from __future__ import annotations

import threading

from supervisor.thread_handles import ThreadHandles


class Handle:
    def __init__(self, target: str):
        self.target = target
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_one_handle_per_thread_and_server_made_again_for_a_new_target():
    handles: ThreadHandles[str, Handle] = ThreadHandles(Handle, lambda handle: handle.target)
    first = handles.get("m1", "/data/m1")
    assert handles.get("m1", "/data/m1") is first
    assert handles.get("m2", "/data/m2") is not first
    other_thread: list[Handle] = []
    worker = threading.Thread(target=lambda: other_thread.append(handles.get("m1", "/data/m1")))
    worker.start()
    worker.join()
    assert other_thread[0] is not first and not first.closed
    moved = handles.get("m1", "/elsewhere/m1")
    assert first.closed and moved.target == "/elsewhere/m1"
    second = handles.get("m2", "/data/m2")
    handles.close_thread()
    assert moved.closed and second.closed and not other_thread[0].closed
    assert handles.get("m1", "/elsewhere/m1") is not moved
