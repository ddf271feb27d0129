"""A client load for the simulated-machine tests: writes and reads, every outcome recorded.

Run inside a machine (tests/integration/netkit.py):

    python -m tests.integration.netload HOST PORT OUT.json STOP_FILE --first-id N [--tls-ca CA]

One writer inserts rows with increasing ids (from N) into `t` of database
`sekoly`, one statement at a time; one reader reads the table's rows
(`alaivo id ao@ t rehefa id < 0;`: every server answers it from its copy).
Both reconnect after a broken connection. The secret comes from
TAHIRY_SECRET. When STOP_FILE exists the load stops and writes OUT.json:

    {"acked": [[id, time, sent], ...] (answered with success at `time`, sent at `sent`),
     "write_errors": [[time, id, message]],
     "reads_ok": n, "read_errors": [[time, message]]}

times are wall-clock seconds (one kernel, one clock for every namespace).
A write that failed may still have been applied ("outcome unknown"); only
the acknowledged ones must survive anything.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import threading
import time
from pathlib import Path

from nodes.protocol import ResponseDecoder, auth_request

TIMEOUT_S = 5.0
PAUSE_AFTER_ERROR_S = 0.05


class Session:
    """One connection that comes back after a failure (auth and `ampiasao` again)."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None):
        self.host, self.port, self.tls = host, port, tls
        self.sock: socket.socket | None = None
        self.decoder = ResponseDecoder()
        self.ready: list = []

    def _connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        self.sock, self.decoder, self.ready = sock, ResponseDecoder(), []
        secret = os.environ.get("TAHIRY_SECRET")
        first = (auth_request(secret) if secret else b"") + b"ampiasao sekoly;"
        for response in self._exchange(first, 2 if secret else 1):
            if not response.ok:
                raise ConnectionError(response.message.strip())

    def _exchange(self, data: bytes, count: int) -> list:
        assert self.sock is not None
        self.sock.sendall(data)
        while len(self.ready) < count:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("connection closed")
            self.ready.extend(self.decoder.feed(chunk))
        taken, self.ready = self.ready[:count], self.ready[count:]
        return taken

    def run(self, statement: str):
        """The response, or raises OSError (the connection is then made again next time)."""
        try:
            if self.sock is None:
                self._connect()
            return self._exchange(statement.encode(), 1)[0]
        except (OSError, ssl.SSLError):
            self.close()
            raise

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("stop", type=Path)
    parser.add_argument("--first-id", type=int, default=1)
    parser.add_argument("--tls-ca", type=Path, default=None)
    parser.add_argument("--no-reads", action="store_true")
    args = parser.parse_args()
    tls = None
    if args.tls_ca is not None:
        tls = ssl.create_default_context(cafile=str(args.tls_ca))
    acked: list[list] = []
    write_errors: list = []
    read_errors: list = []
    reads = [0]
    stopped = threading.Event()

    def writer() -> None:
        session = Session(args.host, args.port, tls)
        next_id = args.first_id
        while not stopped.is_set():
            sent = time.time()
            try:
                response = session.run(f"manampia ao@ t sanda ({next_id});")
            except OSError as error:
                write_errors.append([time.time(), next_id, f"connection: {error}"])
                time.sleep(PAUSE_AFTER_ERROR_S)
            else:
                if response.ok:
                    acked.append([next_id, time.time(), sent])
                else:
                    write_errors.append([time.time(), next_id, response.message.strip()[:200]])
                    time.sleep(PAUSE_AFTER_ERROR_S)
            next_id += 1

    def reader() -> None:
        session = Session(args.host, args.port, tls)
        while not stopped.is_set():
            try:
                response = session.run("alaivo id ao@ t rehefa id < 0;")
            except OSError as error:
                read_errors.append([time.time(), f"connection: {error}"])
                time.sleep(PAUSE_AFTER_ERROR_S)
                continue
            if response.ok:
                reads[0] += 1
            else:
                read_errors.append([time.time(), response.message.strip()[:200]])
                time.sleep(PAUSE_AFTER_ERROR_S)
            time.sleep(0.01)

    threads = [threading.Thread(target=writer, daemon=True)]
    if not args.no_reads:
        threads.append(threading.Thread(target=reader, daemon=True))
    for thread in threads:
        thread.start()
    while not args.stop.exists():
        time.sleep(0.05)
    stopped.set()
    for thread in threads:
        thread.join(timeout=2 * TIMEOUT_S)
    result = {"acked": acked, "write_errors": write_errors, "reads_ok": reads[0],
              "read_errors": read_errors}
    temp = args.out.with_suffix(".tmp")
    temp.write_text(json.dumps(result))
    os.replace(temp, args.out)


if __name__ == "__main__":
    main()
