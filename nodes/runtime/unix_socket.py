"""A node's Unix socket: how the nodes of one machine reach it, besides its TCP port.

A node started with `--unix-socket PATH` (the supervisor gives one to the
servers and balancers it runs: supervisor/cluster.py `node_command`) also
listens there, through `run_server` (nodes/runtime/serving.py): the same
handler, secret, admission caps and idle rules as its TCP listener. A round
trip over a Unix socket skips the loopback TCP stack (measured on a 2-core
VM: ~38 us against ~57 us for a Python ping-pong), which is most of what a
hop between two processes of one machine costs (docs/PERFORMANCE.md).

The file (`bind_unix_socket`):

- is created mode 0600 (only the cluster's user may connect; set on the
  socket before bind, so it is never more open, and once more on the file);
- replaces a stale socket file left by a crash (a socket nobody listens on);
- refuses, leaving it as it is, a PATH where a live process listens, and
  a path longer than a Unix socket address holds (`path_fits`: sun_path's
  108 bytes, the NUL included): the node does not start;
- leaves as it is a PATH that holds something else (a regular file, a
  directory) or where the bind fails (`UnixSocketUnusable`): the node
  serves over TCP only (`bind_or_keep_tcp`), which its peers fall back to.
  A stray file in the run folder must not keep a supervised node down:
  its restarts would all fail, where over TCP it would have run;
- is removed at a clean stop (`UnixListener.remove`), unless another
  process has replaced it meanwhile.

A Unix socket carries no TLS: a node with TLS refuses `--unix-socket`
(every link of a TLS cluster stays TLS; docs/SECURITY.md). The connecting
side is `open_upstream` (nodes/runtime/upstream.py): over the socket when
a path is given, else or when that fails, TCP.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from dataclasses import dataclass

from nodes.errors import NodeError

# sun_path holds 108 bytes on Linux, the terminating NUL included.
MAX_PATH_BYTES = 107
SOCKET_FILE_MODE = 0o600
# Whether a live process listens at an existing socket file: a local connect
# answers at once (refused, or accepted into the backlog); this only bounds
# a listener whose backlog is full.
_LIVENESS_TIMEOUT_S = 1.0


class UnixSocketRefused(NodeError):
    """The node cannot listen at its `--unix-socket` path; one sentence saying why."""


class UnixSocketUnusable(UnixSocketRefused):
    """The path holds something that is not a socket, or cannot be bound: no other node
    is there, so the node may serve over TCP only (`bind_or_keep_tcp`)."""


def path_fits(path: str) -> bool:
    """Whether `path` fits in a Unix socket address (the supervisor's check, and the node's)."""
    return 0 < len(os.fsencode(path)) <= MAX_PATH_BYTES


@dataclass(frozen=True)
class UnixListener:
    """A bound socket file of this process: its path and which file it is (device, inode)."""

    path: str
    sock: socket.socket
    identity: tuple[int, int]

    def remove(self) -> None:
        """Remove the socket file, if it is still the one bound here (a clean stop)."""
        try:
            info = os.lstat(self.path)
        except OSError:
            return
        if (info.st_dev, info.st_ino) == self.identity:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def bind_or_keep_tcp(path: str, logger: logging.Logger) -> UnixListener | None:
    """`bind_unix_socket`, or None (TCP only, said in the log) when the path is unusable
    but no other node is there; UnixSocketRefused otherwise."""
    try:
        return bind_unix_socket(path)
    except UnixSocketUnusable as unusable:
        logger.warning("%s: serving over TCP only", unusable)
        return None


def bind_unix_socket(path: str) -> UnixListener:
    """A Unix socket bound at `path` (mode 0600), not listening yet; UnixSocketRefused if not.

    A stale socket file at `path` is replaced; anything else there is left
    as it is and refused.
    """
    if not path_fits(path):
        raise UnixSocketRefused(
            f"unix socket {path}: the path is {len(os.fsencode(path))} bytes, a Unix socket "
            f"address holds at most {MAX_PATH_BYTES}: give a shorter one")
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # On Linux the file takes the socket's mode at bind: never more open than 0600.
        os.fchmod(sock.fileno(), SOCKET_FILE_MODE)
        sock.bind(path)
        os.chmod(path, SOCKET_FILE_MODE)   # elsewhere, and whatever the umask
        info = os.lstat(path)
    except OSError as error:
        sock.close()
        raise UnixSocketUnusable(f"unix socket {path}: cannot listen there: "
                                f"{error.strerror or error}") from None
    return UnixListener(path, sock, (info.st_dev, info.st_ino))


def _clear_stale(path: str) -> None:
    """Remove a socket file nobody listens on; refuse anything else that exists at `path`."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise UnixSocketRefused(f"unix socket {path}: {error.strerror or error}") from None
    if not stat.S_ISSOCK(info.st_mode):
        raise UnixSocketUnusable(f"unix socket {path}: a file that is not a socket is there; "
                                 f"it was left as it is: remove it or give another path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(_LIVENESS_TIMEOUT_S)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        pass   # nobody listens: a crashed node's file
    except FileNotFoundError:
        return   # gone meanwhile
    except OSError as error:
        raise UnixSocketRefused(f"unix socket {path}: cannot tell whether a process listens "
                                f"there ({error.strerror or error}); it was left as it is") from None
    else:
        raise UnixSocketRefused(f"unix socket {path}: another process listens there (a node "
                                f"still running?); it was left as it is")
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
