"""Watchdog plumbing for replication: which events, and an observer without stalls.

`make_observer()` returns a watchdog observer for data directories. On Linux
it is the inotify observer with one change: watchdog holds an unmatched
IN_MOVED_FROM for 0.5 s waiting for its IN_MOVED_TO, and while it waits every
later event of that directory waits too. The two halves of a same-folder
rename (how every object file is written) are adjacent in the kernel queue,
but when a read() happens to split them the whole queue stalls 0.5 s. A
5 ms window pairs them just as well and bounds the stall; an unpaired
IN_MOVED_TO still arrives (as a created event), which is all replication
needs.

`DirectoryHandler` turns one data directory's events into object paths
(relative, with '/') handed to a callback; temp files and anything that is
not an object file are filtered out here. A journal append
(`<db>/tables/<t>.journal`, docs/STORAGE.md) is no rename: it arrives as a
creation (a new journal), a modification (the write, made holding the
commit locks, in one `write` call) and a close (after its fsync). Only the
modification is taken (and a journal renamed into place), mapped to the
table `<db>/tables/<t>.json`: the copy
starts at the write, while its writer fsyncs, as a snapshot's starts at its
rename while its writer fsyncs the folder. (Taking the close too made a
second job per write, and replication of a class's writes slower; a lost
event is caught by the periodic pass.) Shipping an entry before its own
server made it durable loses nothing: the writer answers only after its
fsync, and an entry whose fsync failed is an "outcome unknown" write,
which may be applied.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from engine.storage.journal import is_journal_file
from supervisor.objectfiles import list_object_files, relpath_under

# Only what a write produces: the rename of a temp file (moved or
# created-by-move), a journal append (modified: the lag is measured from its
# first event; closed: a writer that keeps its journal open still modifies
# it), a direct write being closed, and new folders. Open and
# close-without-write events (our own reads) are never asked for.
WATCHED_EVENTS = [FileMovedEvent, FileCreatedEvent, FileModifiedEvent, FileClosedEvent,
                  DirCreatedEvent, DirMovedEvent]
MOVE_PAIRING_WINDOW_S = 0.005

try:
    from watchdog.observers.inotify import InotifyEmitter
    from watchdog.observers.inotify_buffer import InotifyBuffer
    HAS_INOTIFY = True
except ImportError:  # not Linux: the platform's default observer
    HAS_INOTIFY = False


if HAS_INOTIFY:
    class _PromptInotifyBuffer(InotifyBuffer):
        delay = MOVE_PAIRING_WINDOW_S

    class _PromptInotifyEmitter(InotifyEmitter):
        def on_thread_start(self) -> None:
            path = os.fsencode(self.watch.path)
            self._inotify = _PromptInotifyBuffer(path, recursive=self.watch.is_recursive,
                                                 event_mask=self.get_event_mask_from_filter())


def make_observer() -> BaseObserver:
    if HAS_INOTIFY:
        return BaseObserver(_PromptInotifyEmitter, timeout=0.5)
    return Observer()


class DirectoryHandler(FileSystemEventHandler):
    """Calls `on_path(relpath)` for every object file written in `root`.

    Runs in watchdog's dispatch thread; failures go to `on_error(message)`.
    """

    def __init__(self, root: str, on_path: Callable[[str], None],
                 on_error: Callable[[str], None]):
        self.root = root
        self.on_path = on_path
        self.on_error = on_error

    def on_any_event(self, event: FileSystemEvent) -> None:
        # An exception here would end watchdog's dispatch thread: never raise.
        try:
            self._handle(event)
        except Exception as error:  # noqa: BLE001
            self.on_error(f"cannot handle {event!r}: {error}")

    def _handle(self, event: FileSystemEvent) -> None:
        path = event.dest_path if isinstance(event, (FileMovedEvent, DirMovedEvent)) \
            else event.src_path
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not path:
            return
        if event.is_directory:
            # Files written into a brand-new folder before its watch existed
            # would be missed: look inside.
            prefix = os.path.relpath(path, self.root).replace(os.sep, "/") + "/"
            for rel in sorted(list_object_files(Path(self.root))):
                if rel.startswith(prefix):
                    self.on_path(rel)
            return
        if isinstance(event, (FileCreatedEvent, FileClosedEvent)) \
                and is_journal_file(os.path.basename(path)):
            return  # an append: its modification is taken (module docstring)
        changed = relpath_under(self.root, path)
        if changed is not None:
            self.on_path(changed)
