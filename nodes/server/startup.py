"""Starting a database server: `python -m nodes.server --id m1 --port 3948 --data data/m1`.

`main` reads the command line, takes the data directory (its owner lock:
`take_data_directory`), opens the store with its peers, creates the first
administrator from the environment when asked (or, a peer on another
machine not up yet, later: `first_admin_task`), and serves with a
`DatabaseServer` (nodes/server/node.py) until stopped. Anything that keeps
the server from starting is one line on the log (and on stderr) and exit
code 2 (`_cannot_start`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from engine.errors import TahiryError
from engine.language.messages import code_of
from engine.storage.checkpoints import DEFAULT_IDLE_S, DEFAULT_MIN_BYTES, DEFAULT_RATIO, CheckpointPolicy
from engine.storage.data_owner import (
    DirectoryOfAnotherCluster,
    DirectoryTaken,
    OwnerLock,
    OwnerRecord,
    join_cluster,
)
from engine.storage.store import Store
from nodes.protocol import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_PAGE_ROWS,
    add_auth_arguments,
    add_login_arguments,
    node_auth_guard,
    node_login_gate,
)
from nodes.protocol.status_token import status_token_from_environment
from nodes.runtime.admission import connection_limits
from nodes.runtime.node_process import (
    bind_ephemeral,
    node_argument_parser,
    node_tls,
    run_node,
    setup_logging,
)
from nodes.runtime.serving import DEFAULT_IDLE_TIMEOUT_S, run_server
from nodes.server.accounts import (
    ADMIN_PASSWORD_ENV,
    ADMIN_USER_ENV,
    AccountsEngine,
    ServerAccounts,
    first_admin_from_environment,
)
from nodes.server.membership import PeerDirectories, parse_peer_address, parse_peer_option
from nodes.server.node import DatabaseServer
from nodes.server.peer_only import PeerOnlyServer
from nodes.server.remote_peer import DEFAULT_LEASE_S, LEASE_MARGIN_S, PeerAddress, RemotePeer


def main(argv: list[str] | None = None) -> None:
    parser = node_argument_parser("Tahiry database server", default_port=3948)
    parser.add_argument("--data", default=None, help="data directory (created if missing)")
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT_S,
                        help="close connections idle for this many seconds (0: never)")
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--page-rows", type=int, default=DEFAULT_PAGE_ROWS,
                        help="rows per RELATION_JSON_PAGE")
    parser.add_argument("--max-request-bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES)
    add_auth_arguments(parser)
    add_login_arguments(parser)
    parser.add_argument("--accounts", action="store_true",
                        help="require `.login <name> <password>;` on every connection before "
                             "anything but .auth/.ping/.status (docs/SECURITY.md, \"Accounts\"); "
                             "the first administrator comes from TAHIRY_ADMIN_USER and "
                             "TAHIRY_ADMIN_PASSWORD in the environment")
    parser.add_argument("--inline", action="store_true",
                        help="run statements on the event loop instead of the engine thread")
    parser.add_argument("--peers-file", default=None,
                        help="JSON {\"peers\": {ID: DATA_DIR}} of the other servers (re-read when "
                             "it changes): pull on write, fence on commit")
    parser.add_argument("--peer", action="append", default=[], metavar="ID=DIR",
                        help="another server's data directory (repeatable)")
    parser.add_argument("--peer-address", action="append", default=[], metavar="ID=HOST:PORT",
                        help="another server, on another machine: asked over the network with "
                             "`.peer` requests (repeatable)")
    parser.add_argument("--peer-lease-s", type=float, default=DEFAULT_LEASE_S,
                        help="how long a network peer's write lock is leased to a commit at most")
    parser.add_argument("--checkpoint-bytes", type=int, default=DEFAULT_MIN_BYTES,
                        help="a table's journal is folded into its snapshot once it is larger "
                             "than this and than the snapshot (docs/STORAGE.md)")
    parser.add_argument("--checkpoint-ratio", type=float, default=DEFAULT_RATIO,
                        help="... larger than this times the snapshot")
    parser.add_argument("--checkpoint-idle-s", type=float, default=DEFAULT_IDLE_S,
                        help="... or once nothing was appended to it for this long")
    parser.add_argument("--cluster", default=None,
                        help="the cluster this server belongs to (the supervisor passes its "
                             "topology file): a data directory of another cluster is refused")
    parser.add_argument("--peer-only", action="store_true",
                        help="answer only `.peer` requests (and .ping/.status) on --data: the old "
                             "directory of a server moved to another machine, served to the "
                             "other machines' servers until it is handed over "
                             "(nodes/server/peer_only.py)")
    args = parser.parse_args(argv)
    try:
        fixed_peers = dict(parse_peer_option(text) for text in args.peer)
        peer_addresses = dict(parse_peer_address(text) for text in args.peer_address)
    except ValueError as error:
        parser.error(str(error))
    if args.inline and peer_addresses:
        parser.error("--inline cannot have --peer-address peers: statements on the event loop "
                     "would wait for a peer that waits for this server's answer")
    if not 1.5 * LEASE_MARGIN_S <= args.peer_lease_s <= 600:
        parser.error(f"--peer-lease-s {args.peer_lease_s:g}: between {1.5 * LEASE_MARGIN_S:g} "
                     f"and 600 seconds")
    data = args.data
    if not data:
        parser.error("--data is required")
    if Path(data).exists() and not Path(data).is_dir():   # /dev/null, a file: no traceback
        parser.error(f"--data {data}: not a directory")
    # (The engine's loggers write through the same handler: pulls from peers are INFO lines.)
    # (Named after the package: every line of the server, whichever module logs it.)
    logger = setup_logging(args.id, args.log_file, args.log_level, __package__ or __name__)
    auth = node_auth_guard(args, logger)
    tls = node_tls(args, "server")   # a bad TLS file: one line and exit 2, before anything opens
    # With --port 0 the port is taken now: the owner record names the real one.
    listener = bind_ephemeral(args.host) if args.port == 0 else None
    if listener is not None:
        args.port = listener.getsockname()[1]
    # Held until the process ends: no second server, and no server of another
    # cluster, ever writes into this directory beside us.
    owner = take_data_directory(Path(data), args, logger)
    if args.peer_only:
        _serve_peers_only(args, Path(data), logger, auth, tls, listener, owner)
        return

    def remote(peer_id: str, host: str, port: int) -> RemotePeer:
        # The cluster's secret and TLS, as every other link of the node.
        if args.inline:
            logger.error("peer %s at %s:%d is asked over the network, but this server runs "
                         "--inline: its writes may stall while that peer waits for it", peer_id,
                         host, port)
        return RemotePeer(peer_id, PeerAddress(host, port, auth.secret, tls.client),
                          lease_s=args.peer_lease_s, asker=args.id)

    peers = (PeerDirectories(fixed_peers, Path(args.peers_file) if args.peers_file else None,
                             addresses=peer_addresses, remote=remote)
             if fixed_peers or peer_addresses or args.peers_file else None)
    # Holding the directory, no other server writes here: every temp file is
    # debris of a process that died mid-write (a replication copy in flight,
    # if any, fails its rename and is made again), so none is kept; torn
    # journal tails are cut and format 1 documents upgraded (exclusive).
    # (watch_folders: a cached version is used without `stat` while nothing
    # changed in its folders; engine/storage/cached_reads.py.)
    store = Store(Path(data), peers=peers, exclusive=owner is not None, watch_folders=True,
                  node_id=args.id,
                  checkpoints=CheckpointPolicy(min_bytes=args.checkpoint_bytes,
                                               ratio=args.checkpoint_ratio,
                                               idle_s=args.checkpoint_idle_s))
    accounts = ServerAccounts(args.id, store, args.accounts, logger=logger,
                              status_token=status_token_from_environment())
    first_admin_later = None
    if os.environ.get(ADMIN_USER_ENV) or os.environ.get(ADMIN_PASSWORD_ENV):
        admin = (os.environ.get(ADMIN_USER_ENV, ""), os.environ.get(ADMIN_PASSWORD_ENV, ""))
        # Before the engine thread exists: nothing else touches the store yet.
        try:
            first_admin_from_environment(store, AccountsEngine.from_engine(), logger)
        except TahiryError as error:
            if code_of(error.message) != "peer_unreachable":
                _cannot_start(f"cannot create the first administrator: {error.message}", args,
                              logger)
            # A server of another machine is not up yet (every write is certified against
            # it): start, and create the account once it answers (or another server did).
            logger.warning("the first administrator is not created yet (%s): tried again "
                           "while this server runs", error.message)
            first_admin_later = first_admin_task(store, admin, logger,
                                                  AccountsEngine.from_engine())
    server = DatabaseServer(args.id, store, logger, idle_timeout=args.idle_timeout or None,
                            max_connections=args.max_connections, page_rows=args.page_rows,
                            max_request_bytes=args.max_request_bytes, inline=args.inline,
                            auth=auth, accounts=accounts, peers=peers)
    if first_admin_later is not None:
        server.idle_tasks.append(first_admin_later)
    server.stats.login = node_login_gate(args, logger)
    logger.info("data directory %s", Path(data).resolve())
    try:
        run_node(run_server(server.open_client, args.host, args.port, logger, server.stats,
                            max_request_bytes=args.max_request_bytes, auth=auth,
                            on_stop=server.stop, port_file=args.port_file, sock=listener,
                            limits=connection_limits(args),
                            ssl_context=tls.server, unix_socket=args.unix_socket),
                 logger)
    finally:
        if owner is not None:
            owner.release()


def _serve_peers_only(args, data: Path, logger: logging.Logger, auth, tls, listener,
                      owner: OwnerLock | None) -> None:
    """`--peer-only`: no store, no statements; the `.peer` answers on `data` until stopped."""
    server = PeerOnlyServer(args.id, data, logger, max_request_bytes=args.max_request_bytes,
                            auth=auth, idle_timeout=args.idle_timeout or None)
    logger.info("data directory %s, served to its peers only", data.resolve())
    try:
        run_node(run_server(server.open_client, args.host, args.port, logger, server.stats,
                            max_request_bytes=args.max_request_bytes, auth=auth,
                            on_stop=server.stop, port_file=args.port_file, sock=listener,
                            limits=connection_limits(args), ssl_context=tls.server,
                            unix_socket=args.unix_socket),
                 logger)
    finally:
        if owner is not None:
            owner.release()


def first_admin_task(store: Store, admin: tuple[str, str], logger: logging.Logger,
                      api: AccountsEngine) -> Callable[[], bool]:
    """An idle task of the engine thread: create the first administrator; True once done.

    The password is hashed once, here (at start-up, before the engine
    thread runs): each idle tick costs the attempt, not a scrypt hash.
    """
    name, password = admin
    stored = api.hash_ahead(password).stored

    def attempt() -> bool:
        try:
            created = api.ensure_first_admin(store, name, password, stored)
        except TahiryError:
            return False   # still unreachable: the next idle tick tries again
        logger.info("created the first administrator account %s" if created
                    else "accounts exist already: %s not created again", name)
        return True

    return attempt


def take_data_directory(data: Path, args, logger: logging.Logger) -> OwnerLock | None:
    """The data directory's owner lock for this process; exits (code 2) naming who has it.

    Without `--cluster` (a server run by hand) only a live owner is refused;
    with it, a directory another cluster used is refused too, even while
    that cluster is stopped (docs/STORAGE.md, "Paths"). A directory that
    cannot be written (read-only, disk full) is still served, for reads:
    what cannot be recorded there is logged, not fatal.
    """
    record = OwnerRecord(node=args.id, pid=os.getpid(), host=args.host, port=args.port,
                         cluster=args.cluster, started=time.time())
    owner = None
    try:
        owner = OwnerLock.acquire(data, record)
    except DirectoryTaken as error:
        _cannot_start(f"{error}; stop it first, or give this server another --data",
                      args, logger)
    except OSError as error:  # no lock file and none can be made: nobody else can write either
        logger.warning("cannot take the owner lock of %s (%s); serving without it", data, error)
    if owner is not None and owner.record_error is not None:
        logger.warning("cannot write the owner record in %s: %s", data, owner.record_error)
    try:
        if args.cluster:
            join_cluster(data, args.cluster)
    except DirectoryOfAnotherCluster as error:
        if owner is not None:
            owner.release()
        _cannot_start(f"{error} (not {args.cluster}); start it with that cluster, or hand it "
                      f"over deliberately: python -m supervisor up {args.cluster} --take-over",
                      args, logger)
    except OSError as error:
        logger.warning("cannot record cluster %s in %s: %s", args.cluster, data, error)
    return owner


def _cannot_start(message: str, args, logger: logging.Logger) -> None:
    logger.error("cannot start: %s", message)
    if args.log_file:  # the log file alone would hide it from whoever typed the command
        print(f"{args.id}: cannot start: {message}", file=sys.stderr)
    raise SystemExit(2)

