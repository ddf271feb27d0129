"""Load and validate topology.yaml into plain dataclasses.

Every mistake in the file becomes one message naming the file, the line and
the key (`topology.yaml line 12: nodes.lb.backends: unknown node 'm9'`);
`load_topology` raises `TopologyError` carrying all of them, so nothing is
ever started from an invalid file. Relative paths are resolved against the
folder of the YAML file.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from nodes.protocol import SECRET_ENV, is_loopback, secret_problem
from nodes.protocol.tls import TlsConfigError, TlsSettings, client_context, server_context
from nodes.runtime.unix_socket import MAX_PATH_BYTES, path_fits

from .account_names import name_problem
from .errors import SupervisorError
from .quorum import LeaseSettings

KINDS = ("server", "balancer", "proxycache")
# A shorter secret is refused when a node listens off loopback, warned about
# otherwise (docs/SECURITY.md, "The shared secret").
MIN_SECRET_CHARS = 16
ID_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


class TopologyError(SupervisorError):
    """An invalid topology: one line per mistake, each naming key and line."""

    def __init__(self, messages: list[str]):
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))


@dataclass(frozen=True)
class HealthSettings:
    interval_ms: int = 500
    timeout_ms: int = 1000
    fall: int = 3
    start_timeout_ms: int = 10000


@dataclass(frozen=True)
class RestartSettings:
    backoff_initial_ms: int = 100
    backoff_max_ms: int = 5000
    max_restarts: int = 5
    window_s: int = 60
    reset_after_s: int = 10
    stop_grace_ms: int = 3000


@dataclass(frozen=True)
class SupervisorSettings:
    control_port: int
    logs: Path
    run: Path
    log_max_bytes: int = 5_000_000
    log_backups: int = 3
    health: HealthSettings = field(default_factory=HealthSettings)
    restart: RestartSettings = field(default_factory=RestartSettings)
    # The nodes of one machine reach its servers and balancers through Unix
    # sockets in the run folder (`Topology.unix_socket`); false: TCP only.
    local_sockets: bool = True


# The status page and /metrics (supervisor/web): loopback by default, on the port
# below the control port (3946 for the default topology's 3947), else this one.
DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 3946


@dataclass(frozen=True)
class HttpSettings:
    """The supervisor's HTTP server (status page, /metrics): `http:` in the topology.

    Off loopback every request must carry the topology's secret (bearer
    token, or basic auth for a browser); TLS is not offered yet.
    """

    enabled: bool = True
    host: str = DEFAULT_HTTP_HOST
    port: int = DEFAULT_HTTP_PORT

    @property
    def needs_secret(self) -> bool:
        return not is_loopback(self.host)


# The first administrator's account name when `accounts: true` gives none
# ("the teacher"; docs/SECURITY.md, "Accounts").
DEFAULT_ADMIN = "mpampianatra"


@dataclass(frozen=True)
class AccountSettings:
    """`accounts:` in the topology: logins, ownership and rights (issue 17).

    `accounts: true` or `accounts: {admin: NAME}`. On, every server runs with
    `--accounts` and the first administrator is `admin` (created by the
    servers from the password `up` was given, when no account exists yet).
    """

    enabled: bool = False
    admin: str = DEFAULT_ADMIN


@dataclass(frozen=True)
class NodeSpec:
    """One node of the cluster as the file describes it."""

    id: str
    kind: str
    host: str
    port: int
    line: int = field(default=0, compare=False)
    data: Path | None = None                 # server
    # balancer (None means every server); a proxycache given it instead of
    # `upstream` is the one relay: it runs the balancer over them itself.
    backends: tuple[str, ...] | None = None
    upstream: str | None = None              # proxycache: id of a balancer or server
    ttl_ms: int | None = None                # proxycache
    max_entries: int | None = None           # proxycache

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_relay(self) -> bool:
        """A proxy cache running the balancer in its own process (nodes/relay)."""
        return self.kind == "proxycache" and self.backends is not None

    @property
    def routes(self) -> bool:
        """It runs a balancer (a balancer, or the one relay): it has a backends file."""
        return self.kind == "balancer" or self.is_relay

    @property
    def data_dir(self) -> Path:
        """A server's data directory (the file must give one for every server)."""
        if self.data is None:
            raise SupervisorError(f"node {self.id} is a {self.kind}: it has no data directory")
        return self.data


@dataclass(frozen=True)
class Topology:
    path: Path
    supervisor: SupervisorSettings
    replication_enabled: bool
    nodes: dict[str, NodeSpec]
    secret: str | None = None
    # Accepted but worth saying (a weak secret on a loopback-only cluster, a
    # secret in a file others may read), found reading the file: `notices` has them.
    warnings: tuple[str, ...] = ()
    http: HttpSettings = field(default_factory=HttpSettings)
    # Nodes another machine runs (supervisor/machine.py `place`): this
    # machine's supervisor only probes them. Empty: every node is here.
    remote: frozenset[str] = frozenset()
    # The addresses that placement used (a hot reload places the new file the same way).
    machine: frozenset[str] = frozenset()
    tls: TlsSettings = field(default_factory=TlsSettings)   # `tls:`: off by default
    accounts: AccountSettings = field(default_factory=AccountSettings)  # `accounts:`: off
    write_leases: LeaseSettings = field(default_factory=LeaseSettings)  # `write_leases:`: off

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def of_kind(self, kind: str) -> list[NodeSpec]:
        return [n for n in self.nodes.values() if n.kind == kind]

    def runs_here(self, node_id: str) -> bool:
        return node_id not in self.remote

    def local_of_kind(self, kind: str) -> list[NodeSpec]:
        """The nodes of a kind this machine runs."""
        return [n for n in self.of_kind(kind) if n.id not in self.remote]

    def backends_of(self, balancer_id: str) -> list[str]:
        """The servers of a balancer (or of a one-relay proxy cache)."""
        spec = self.nodes[balancer_id]
        if spec.backends is None:
            return [n.id for n in self.of_kind("server")]
        return list(spec.backends)

    def local_routers(self) -> list[NodeSpec]:
        """This machine's nodes that run a balancer: balancers and one-relay proxy caches."""
        return [n for n in self.nodes.values() if n.routes and n.id not in self.remote]

    def unix_socket(self, node_id: str, run_dir: Path) -> Path | None:
        """The Unix socket a node of this machine also listens on, for this machine's others.

        `<run dir>/<id>.sock` for a server or a balancer this machine runs
        (those are what other nodes connect to; clients, and so the proxy
        caches and relays, keep TCP), when `supervisor.local_sockets` is on
        and the topology has no `tls:` (a Unix socket carries no TLS: a TLS
        cluster's links all stay TLS). None (TCP only) otherwise, and for a
        path too long for a socket address (`long_socket_paths` says so).
        """
        spec = self.nodes[node_id]
        if not self.supervisor.local_sockets or self.tls.enabled \
                or not self.runs_here(node_id) or spec.kind not in ("server", "balancer"):
            return None
        path = run_dir / f"{node_id}.sock"
        return path if path_fits(str(path)) else None

    @property
    def notices(self) -> tuple[str, ...]:
        """What `check`, `up` and a reload say about an accepted topology: the file's
        `warnings`, then this machine's nodes left without their Unix socket."""
        return (*self.warnings, *self.long_socket_paths())

    def long_socket_paths(self) -> list[str]:
        """The warnings for this machine's nodes that would have a Unix socket but for its
        path's length (another machine's nodes have their own `run:` folder)."""
        run_dir = self.supervisor.run
        if not self.supervisor.local_sockets or self.tls.enabled:
            return []
        return [f"supervisor.run: {run_dir / f'{spec.id}.sock'} is longer than a Unix socket "
                f"address holds ({MAX_PATH_BYTES} bytes): {spec.id} is reached over TCP only "
                f"(a shorter `run:` folder gives it its socket)"
                for spec in self.nodes.values() if spec.kind in ("server", "balancer")
                and self.runs_here(spec.id) and not path_fits(str(run_dir / f"{spec.id}.sock"))]

    def dependencies(self, node_id: str) -> list[str]:
        """Nodes that must answer their health probe before this one starts."""
        spec = self.nodes[node_id]
        if spec.routes:
            return self.backends_of(node_id)
        if spec.kind == "proxycache" and spec.upstream:
            return [spec.upstream]
        return []

    def start_order(self) -> list[str]:
        """This machine's nodes: servers first, then balancers, then proxy caches (file order
        within a kind)."""
        return [n.id for kind in KINDS for n in self.local_of_kind(kind)]


# ---------------------------------------------------------------- YAML with lines

@dataclass
class _Located:
    """A YAML value with the line it starts on; mappings keep each key's line."""

    value: Any  # whatever YAML gave: the checker looks at its type before using it
    line: int
    key_lines: dict[str, int] = field(default_factory=dict)


# More values than a topology ever holds: aliases multiplied by aliases (a "billion
# laughs") are refused before they are expanded for minutes.
MAX_VALUES = 100_000


def _compose(text: str, name: str) -> _Located | None:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        return _convert(root, loader, name, [MAX_VALUES])
    except RecursionError:  # `[[[[...`: yaml's composer and _convert recurse
        raise TopologyError([f"{name}: invalid YAML: nested too deep"]) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        raise TopologyError([f"{name} line {line}: invalid YAML: {error.problem}"]) from None
    except yaml.YAMLError as error:
        raise TopologyError([f"{name}: invalid YAML: {error}"]) from None
    finally:
        loader.dispose()


def _convert(node: yaml.Node, loader: yaml.SafeLoader, name: str,
             budget: list[int]) -> _Located:
    line = node.start_mark.line + 1
    budget[0] -= 1
    if budget[0] < 0:
        raise TopologyError([f"{name} line {line}: too many values (more than {MAX_VALUES}, "
                             f"aliases expanded): a topology is far smaller"])
    if isinstance(node, yaml.MappingNode):
        values: dict[str, _Located] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):  # `? [a, b]`: no key of ours
                raise TopologyError([f"{name} line {key_line}: a key must be a name or a "
                                     f"number, not a list or a mapping"])
            key = loader.construct_object(key_node, deep=True)
            key = str(key)
            if key in values:
                raise TopologyError([f"{name} line {key_line}: duplicate key '{key}'"])
            values[key] = _convert(value_node, loader, name, budget)
            key_lines[key] = key_line
        return _Located(values, line, key_lines)
    if isinstance(node, yaml.SequenceNode):
        return _Located([_convert(item, loader, name, budget) for item in node.value], line)
    return _Located(loader.construct_object(node, deep=True), line)


# ---------------------------------------------------------------- validation

_SUPERVISOR_KEYS = {"control_port", "logs", "run", "log_max_bytes", "log_backups",
                    "health", "restart", "local_sockets"}
_HEALTH_KEYS = {f.name for f in HealthSettings.__dataclass_fields__.values()}
_RESTART_KEYS = {f.name for f in RestartSettings.__dataclass_fields__.values()}
_ROOT_KEYS = {"supervisor", "replication", "nodes", "secret", "http", "tls", "accounts",
              "write_leases"}
_REPLICATION_KEYS = {"enabled"}
_NODE_KEYS = {
    "server": {"kind", "host", "port", "data"},
    "balancer": {"kind", "host", "port", "backends"},
    "proxycache": {"kind", "host", "port", "upstream", "backends", "ttl_ms", "max_entries"},
}
_REQUIRED_KEYS = {
    "server": ("host", "port", "data"),
    "balancer": ("host", "port"),
    "proxycache": ("host", "port", "ttl_ms", "max_entries"),   # and upstream or backends
}


class _Checker:
    """Collects messages while reading the located tree."""

    def __init__(self, name: str):
        self.name = name
        self.messages: list[tuple[int, str]] = []
        self.warnings: list[str] = []

    def error(self, line: int, key: str, text: str) -> None:
        self.messages.append((line, f"{self.name} line {line}: {key}: {text}"))

    def warning(self, line: int, key: str, text: str) -> None:
        self.warnings.append(f"{self.name} line {line}: {key}: {text}")

    def mapping(self, item: _Located, key: str, allowed: set[str]) -> dict[str, _Located] | None:
        if not isinstance(item.value, dict):
            self.error(item.line, key, f"must be a mapping, not {_type_name(item.value)}")
            return None
        for unknown in sorted(set(item.value) - allowed):
            self.error(item.key_lines[unknown], f"{key}.{unknown}" if key else unknown,
                       f"unknown key (expected one of: {', '.join(sorted(allowed))})")
        return item.value

    def integer(self, item: _Located, key: str, low: int = 1, high: int | None = None) -> int | None:
        value = item.value
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(item.line, key, f"must be an integer, not {_type_name(value)}")
            return None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.error(item.line, key, f"must be {bound}, not {value}")
            return None
        return value

    def text(self, item: _Located, key: str) -> str | None:
        if not isinstance(item.value, str) or not item.value.strip():
            self.error(item.line, key, f"must be a non-empty string, not {_type_name(item.value)}")
            return None
        return item.value

    def boolean(self, item: _Located, key: str) -> bool | None:
        if not isinstance(item.value, bool):
            self.error(item.line, key, f"must be true or false, not {_type_name(item.value)}")
            return None
        return item.value


def _kind_name(value: object) -> str:
    """What a value is, without the value (for the secret)."""
    if value is None:
        return "empty"
    return {dict: "a mapping", list: "a list", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)


def _type_name(value: object) -> str:
    if value is None:
        return "empty"
    return {dict: "a mapping", list: "a list", str: f"the string {value!r}",
            bool: f"the boolean {value}", int: f"the integer {value}",
            float: f"the number {value}"}.get(type(value), type(value).__name__)


def read_regular(path: Path) -> bytes:
    """The bytes of the regular file at `path`; OSError for anything else: a FIFO would
    block the reader (the supervisor's event loop) until someone writes into it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"not a regular file: {path}")
        return file.read()


def load_topology(path: str | Path, environ: Mapping[str, str] | None = None) -> Topology:
    """Read and validate a topology file; raise TopologyError listing every mistake."""
    path = Path(path).resolve()
    try:
        text = read_regular(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TopologyError([f"{path.name}: cannot read the file: {error}"]) from None
    topology = parse_topology(text, path, environ)
    return replace(topology, warnings=topology.warnings + _exposure_warnings(topology, text))


def _exposure_warnings(topology: Topology, text: str) -> tuple[str, ...]:
    """The file holds the secret and users other than its owner may read it."""
    if topology.secret is None or topology.secret not in text:
        return ()
    try:
        mode = stat.S_IMODE(topology.path.stat().st_mode)
    except OSError:
        return ()
    if not mode & 0o077:
        return ()
    return (f"{topology.path.name}: holds the secret and users other than its owner may read "
            f"it (mode {mode:04o}): chmod 600 {topology.path.name}",)


def parse_topology(text: str, path: Path, environ: Mapping[str, str] | None = None) -> Topology:
    environ = os.environ if environ is None else environ
    name = path.name
    root = _compose(text, name)
    check = _Checker(name)
    if root is None:
        raise TopologyError([f"{name} line 1: the file is empty (expected a 'nodes' mapping)"])
    top = check.mapping(root, "", _ROOT_KEYS)
    if top is None:
        raise TopologyError([m for _, m in check.messages])

    supervisor = _read_supervisor(check, top.get("supervisor"), path.parent)
    replication = True
    if "replication" in top:
        section = check.mapping(top["replication"], "replication", _REPLICATION_KEYS)
        if section and "enabled" in section:
            replication = bool(check.boolean(section["enabled"], "replication.enabled"))
    secret = None
    secret_line, secret_key = 1, SECRET_ENV
    if "secret" in top:
        secret_line, secret_key = top["secret"].line, "secret"
        if isinstance(top["secret"].value, str):
            secret = check.text(top["secret"], "secret")
        else:  # never echo it: messages reach terminals and, on a reload, the log
            check.error(secret_line, "secret", "must be a non-empty string, not "
                        f"{_kind_name(top['secret'].value)} (value not shown: it is the secret)")
        if secret and (problem := secret_problem(secret)) is not None:
            check.error(top["secret"].line, "secret", problem)
    if not secret and environ.get(SECRET_ENV):
        secret = environ[SECRET_ENV]
        secret_line, secret_key = 1, SECRET_ENV
        if (problem := secret_problem(secret)) is not None:
            check.error(1, SECRET_ENV, f"(environment variable) {problem}")

    nodes: dict[str, NodeSpec] = {}
    if "nodes" not in top:
        check.error(root.line, "nodes", "missing (expected a mapping of node id to node)")
    else:
        section = check.mapping(top["nodes"], "nodes", set(top["nodes"].value)
                                if isinstance(top["nodes"].value, dict) else set())
        if section is not None:
            if not section:
                check.error(top["nodes"].line, "nodes", "no node defined")
            for node_id, item in section.items():
                spec = _read_node(check, node_id, item, top["nodes"].key_lines[node_id],
                                  path.parent)
                if spec is not None:
                    nodes[node_id] = spec
            _check_references(check, nodes, section)
    if supervisor is not None:
        nodes_section = top["nodes"].value if "nodes" in top else None
        _check_addresses(check, nodes, supervisor, secret,
                         nodes_section if isinstance(nodes_section, dict) else None)
    if secret:
        _check_strength(check, secret, secret_line, secret_key, nodes)
    http = _read_http(check, top.get("http"), nodes, supervisor, secret)
    tls = _read_tls(check, top.get("tls"), path.parent)
    accounts = _read_accounts(check, top.get("accounts"))
    write_leases = _read_write_leases(check, top.get("write_leases"))
    if tls is not None and not tls.enabled and any(not is_loopback(n.host) for n in nodes.values()):
        check.warnings.append("nodes listen off loopback without TLS: the secret authenticates "
                              "but nothing is encrypted (a `tls:` section: docs/SECURITY.md)")
    if check.messages:
        raise TopologyError([m for _, m in sorted(check.messages, key=lambda pair: pair[0])])
    assert supervisor is not None  # each way of reading no settings left a message
    topology = Topology(path=path, supervisor=supervisor, replication_enabled=replication,
                        nodes=nodes, secret=secret, warnings=tuple(check.warnings),
                        http=http or HttpSettings(), tls=tls or TlsSettings(),
                        accounts=accounts or AccountSettings(),
                        write_leases=write_leases or LeaseSettings())
    return topology


_WRITE_LEASE_KEYS = {"enabled", "lease_s", "renew_s", "margin_s"}


def _read_write_leases(check: _Checker, item: _Located | None) -> LeaseSettings | None:
    """`write_leases: {enabled: BOOL, lease_s: 3, renew_s: 1, margin_s: 1}` (off by default).

    A lease must outlive a renewal with its margin taken off (renew_s <
    lease_s - margin_s), or a server would stop writing between two rounds.
    """
    if item is None:
        return LeaseSettings()
    section = check.mapping(item, "write_leases", _WRITE_LEASE_KEYS)
    if section is None:
        return None
    default = LeaseSettings()
    values: dict[str, float] = {}
    for key in ("lease_s", "renew_s", "margin_s"):
        if key not in section:
            values[key] = getattr(default, key)
            continue
        value = section[key].value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 600:
            check.error(section[key].line, f"write_leases.{key}",
                        f"must be a number of seconds above 0 and at most 600, not "
                        f"{_type_name(value)}")
            return None
        values[key] = float(value)
    if values["renew_s"] >= values["lease_s"] - values["margin_s"]:
        check.error(item.line, "write_leases", f"renew_s ({values['renew_s']:g}) must be below "
                    f"lease_s - margin_s ({values['lease_s'] - values['margin_s']:g}): a lease "
                    "would run out between two renewals")
        return None
    enabled = check.boolean(section["enabled"], "write_leases.enabled") \
        if "enabled" in section else False
    return LeaseSettings(enabled=bool(enabled), **values)


_ACCOUNTS_KEYS = {"enabled", "admin"}


def _read_accounts(check: _Checker, item: _Located | None) -> AccountSettings | None:
    """`accounts: true|false` or `accounts: {admin: NAME, enabled: BOOL}` (enabled by default).

    The administrator's name is an account name (supervisor/account_names.py).
    """
    if item is None:
        return AccountSettings()
    if isinstance(item.value, bool):
        return AccountSettings(enabled=item.value)
    if not isinstance(item.value, dict):
        check.error(item.line, "accounts", "must be true, false or a mapping such as "
                    f"{{admin: {DEFAULT_ADMIN}}}, not {_type_name(item.value)}")
        return None
    section = check.mapping(item, "accounts", _ACCOUNTS_KEYS)
    if section is None:
        return None
    enabled = check.boolean(section["enabled"], "accounts.enabled") \
        if "enabled" in section else True
    admin: str | None = DEFAULT_ADMIN
    if "admin" in section:
        admin = check.text(section["admin"], "accounts.admin")
        problem = name_problem(admin) if admin is not None else None
        if problem is not None:
            check.error(section["admin"].line, "accounts.admin", problem)
            admin = None
    if enabled is None or admin is None:
        return None
    return AccountSettings(enabled=enabled, admin=admin)


_TLS_KEYS = {"cert", "key", "ca", "client_certs"}


def _read_tls(check: _Checker, item: _Located | None, base: Path) -> TlsSettings | None:
    """`tls: {cert, key, ca, client_certs}`: every link over TLS (nodes/protocol/tls.py).

    The same file on every machine: each machine has its own certificate and
    key at these paths (relative to the topology's folder), signed by the
    CA. The files are read now, so a missing or mismatched one is refused
    here, naming it, not when a node starts.
    """
    if item is None:
        return TlsSettings()
    section = check.mapping(item, "tls", _TLS_KEYS)
    if section is None:
        return None
    paths: dict[str, Path] = {}
    for key in ("cert", "key", "ca"):
        if key not in section:
            check.error(item.line, f"tls.{key}", "missing (TLS needs cert, key and ca)")
            continue
        text = check.text(section[key], f"tls.{key}")
        if text is not None:
            paths[key] = base / text
    client_certs = bool(check.boolean(section["client_certs"], "tls.client_certs")) \
        if "client_certs" in section else False
    if len(paths) < 3:
        return None
    settings = TlsSettings(paths["cert"], paths["key"], paths["ca"], client_certs)
    try:
        server_context(settings)
        client_context(settings)
    except TlsConfigError as error:
        check.error(item.line, "tls", str(error))
        return None
    return settings


def _check_strength(check: _Checker, secret: str, line: int, key: str,
                    nodes: dict[str, NodeSpec]) -> None:
    """A secret shorter than MIN_SECRET_CHARS: refused off loopback, a warning on it.

    Off loopback anyone on the network may guess (the nodes only slow each
    try down); on loopback the secret guards against local users only, and
    the tests and a first try use short ones. The message never shows it.
    """
    if len(secret) >= MIN_SECRET_CHARS:
        return
    source = "(environment variable) " if key == SECRET_ENV else ""
    exposed = [spec for spec in nodes.values() if not is_loopback(spec.host)]
    if exposed:
        check.error(line, key, f"{source}too weak: {len(secret)} character(s), a cluster with a "
                    f"node off loopback needs at least {MIN_SECRET_CHARS} "
                    f"(nodes.{exposed[0].id}.host is {exposed[0].host})")
    else:
        check.warning(line, key, f"{source}weak: {len(secret)} character(s); it is accepted "
                      f"because every node listens on loopback, but a node off loopback needs "
                      f"at least {MIN_SECRET_CHARS}")


def _read_supervisor(check: _Checker, item: _Located | None, base: Path) -> SupervisorSettings | None:
    if item is None:
        check.error(1, "supervisor", "missing (it must at least give control_port)")
        return None
    section = check.mapping(item, "supervisor", _SUPERVISOR_KEYS)
    if section is None:
        return None
    values: dict[str, Any] = {}  # SupervisorSettings' fields, checked one by one
    if "control_port" not in section:
        check.error(item.line, "supervisor.control_port", "missing")
    else:
        values["control_port"] = check.integer(section["control_port"],
                                               "supervisor.control_port", 1, 65535)
    for key, default in (("logs", "logs"), ("run", "run")):
        raw = check.text(section[key], f"supervisor.{key}") if key in section else default
        values[key] = (base / raw) if raw else None
        if values[key] is not None and (blocked := _file_in_the_way(values[key])) is not None:
            check.error(section[key].line if key in section else item.line, f"supervisor.{key}",
                        f"{blocked} is a file, not a directory (the supervisor's "
                        f"{'logs' if key == 'logs' else 'run files'} go there)")
    for key in ("log_max_bytes", "log_backups"):
        if key in section:
            values[key] = check.integer(section[key], f"supervisor.{key}",
                                        1024 if key == "log_max_bytes" else 0)
    if "local_sockets" in section:
        values["local_sockets"] = check.boolean(section["local_sockets"],
                                                "supervisor.local_sockets")
    health = _read_settings(check, section.get("health"), "supervisor.health",
                            HealthSettings, _HEALTH_KEYS)
    restart = _read_settings(check, section.get("restart"), "supervisor.restart",
                             RestartSettings, _RESTART_KEYS)
    if None in values.values() or health is None or restart is None:
        return None
    if restart.backoff_max_ms < restart.backoff_initial_ms:
        check.error(section["restart"].line, "supervisor.restart.backoff_max_ms",
                    "must not be smaller than backoff_initial_ms")
    return SupervisorSettings(health=health, restart=restart, **values)


def _read_settings(check: _Checker, item: _Located | None, key: str, cls, allowed: set[str]):
    if item is None:
        return cls()
    section = check.mapping(item, key, allowed)
    if section is None:
        return None
    values = {name: check.integer(value, f"{key}.{name}") for name, value in section.items()
              if name in allowed}
    if None in values.values():
        return None
    return cls(**values)


# `logs supervisor` and logs/supervisor.log are the supervisor's: no node takes the name.
RESERVED_ID = "supervisor"
# logs/<id>.log, run/<id>.peers.json and their temporary files: well under a file name's 255 bytes.
MAX_ID_CHARS = 64


def _read_node(check: _Checker, node_id: str, item: _Located, line: int, base: Path) -> NodeSpec | None:
    key = f"nodes.{node_id}"
    if not ID_PATTERN.match(node_id):
        check.error(line, key, "a node id must be a letter or '_' followed by letters, "
                               "digits, '_' or '-'")
        return None
    if len(node_id) > MAX_ID_CHARS:
        check.error(line, key, f"a node id has at most {MAX_ID_CHARS} characters (it names "
                               f"the node's files), not {len(node_id)}")
        return None
    if node_id == RESERVED_ID:
        check.error(line, key, f"'{RESERVED_ID}' is the supervisor's own name (its log is "
                               f"logs/{RESERVED_ID}.log): choose another node id")
        return None
    if not isinstance(item.value, dict):
        check.error(item.line, key, f"must be a mapping, not {_type_name(item.value)}")
        return None
    if "kind" not in item.value:
        check.error(line, f"{key}.kind", f"missing (one of: {', '.join(KINDS)})")
        return None
    kind = item.value["kind"].value
    if kind not in KINDS:
        check.error(item.value["kind"].line, f"{key}.kind",
                    f"unknown kind {kind!r} (one of: {', '.join(KINDS)})")
        return None
    fields = check.mapping(item, key, _NODE_KEYS[kind])
    if fields is None:  # not reached: item.value was seen to be a mapping above
        return None
    ok = True
    for required in _REQUIRED_KEYS[kind]:
        if required not in fields:
            check.error(line, f"{key}.{required}", f"missing (a {kind} needs it)")
            ok = False
    if kind == "proxycache" and ("upstream" in fields) == ("backends" in fields):
        both = "upstream" in fields
        check.error(fields["backends"].line if both else line, f"{key}.upstream",
                    "give 'upstream' or 'backends', not both: 'upstream' names the balancer "
                    "(or server) it forwards to, 'backends' lists servers and makes it run the "
                    "balancer itself (one relay)" if both else
                    "missing (a proxycache needs 'upstream', the balancer or server it forwards "
                    "to, or 'backends', the servers of the balancer it then runs itself)")
        ok = False
    values: dict[str, Any] = {}  # NodeSpec's fields, checked one by one
    for name, value in fields.items():
        if name == "host" or name == "upstream":
            values[name] = check.text(value, f"{key}.{name}")
        elif name == "port":
            values[name] = check.integer(value, f"{key}.port", 1, 65535)
        elif name in ("ttl_ms", "max_entries"):
            values[name] = check.integer(value, f"{key}.{name}")
        elif name == "data":
            raw = check.text(value, f"{key}.data")
            values[name] = (base / raw).resolve() if raw else None
        elif name == "backends":
            values[name] = _read_backends(check, value, f"{key}.backends")
    if not ok or any(v is None for n, v in values.items() if n != "backends") \
            or ("backends" in fields and values["backends"] is None):
        return None
    values.pop("kind", None)
    return NodeSpec(id=node_id, kind=kind, line=line, **values)


def _read_backends(check: _Checker, item: _Located, key: str) -> tuple[str, ...] | None:
    if not isinstance(item.value, list):
        check.error(item.line, key, f"must be a list of server ids, not {_type_name(item.value)}")
        return None
    ids = []
    for entry in item.value:
        if not isinstance(entry.value, str):
            check.error(entry.line, key, f"must list server ids, not {_type_name(entry.value)}")
            return None
        if entry.value in ids:
            check.error(entry.line, key, f"server '{entry.value}' listed twice")
            return None
        ids.append(entry.value)
    return tuple(ids)


def _check_references(check: _Checker, nodes: dict[str, NodeSpec],
                      section: dict[str, _Located]) -> None:
    data_dirs: dict[Path | None, str] = {}
    for spec in nodes.values():
        fields = section[spec.id].value
        if spec.kind == "server":
            line, key = fields["data"].line, f"nodes.{spec.id}.data"
            if spec.data in data_dirs:
                check.error(line, key, f"same data directory as '{data_dirs[spec.data]}'")
            elif spec.data is not None:
                _check_data_directory(check, line, key, spec.data, data_dirs)
            data_dirs[spec.data] = spec.id
        if spec.routes and spec.backends is not None:
            line = fields["backends"].line
            if not spec.backends:
                check.error(line, f"nodes.{spec.id}.backends", "lists no server")
            for backend in spec.backends:
                target = nodes.get(backend)
                if target is None and backend not in section:
                    check.error(line, f"nodes.{spec.id}.backends", f"unknown node '{backend}'")
                elif target is not None and target.kind != "server":
                    check.error(line, f"nodes.{spec.id}.backends",
                                f"'{backend}' is a {target.kind}, not a server")
        if spec.kind == "proxycache" and not spec.is_relay:
            line = fields["upstream"].line
            target = nodes.get(spec.upstream or "")  # required for a proxycache: never empty
            if target is None and spec.upstream not in section:
                check.error(line, f"nodes.{spec.id}.upstream", f"unknown node '{spec.upstream}'")
            elif target is not None and target.kind not in ("balancer", "server"):
                check.error(line, f"nodes.{spec.id}.upstream",
                            f"'{spec.upstream}' is a {target.kind}, not a balancer or server")


def _check_data_directory(check: _Checker, line: int, key: str, data: Path,
                          others: dict[Path | None, str]) -> None:
    """A server's directory is nobody else's (the replicator copies each whole
    directory into the others) and can be one: no file stands where it or a
    folder above it would go."""
    for other, owner in others.items():
        if other is None:
            continue
        if other in data.parents:
            check.error(line, key, f"inside the data directory of '{owner}' ({other}): "
                        "each server needs a directory of its own")
            return
        if data in other.parents:
            check.error(line, key, f"holds the data directory of '{owner}' ({other}): "
                        "each server needs a directory of its own")
            return
    if (blocked := _file_in_the_way(data)) is not None:
        check.error(line, key, f"{blocked} is a file, not a directory")


def _file_in_the_way(folder: Path) -> Path | None:
    """The file standing where `folder`, or a folder above it, would be (None: it is a
    directory, or can be made)."""
    for path in (folder, *folder.parents):
        if path.is_dir():
            return None
        if os.path.lexists(path):
            return path
    return None


def _check_addresses(check: _Checker, nodes: dict[str, NodeSpec], supervisor: SupervisorSettings,
                     secret: str | None, section: dict[str, _Located] | None) -> None:
    wildcard = {"0.0.0.0", "::"}
    taken: list[tuple[str, int, str]] = [("127.0.0.1", supervisor.control_port,
                                          "supervisor.control_port")]
    for spec in nodes.values():
        host = "127.0.0.1" if spec.host == "localhost" else spec.host
        fields = section[spec.id].value if section else {}
        port_line = fields["port"].line if "port" in fields else spec.line
        for other_host, other_port, owner in taken:
            if other_port == spec.port and (other_host == host or wildcard & {host, other_host}):
                check.error(port_line, f"nodes.{spec.id}.port",
                            f"port {spec.port} on {spec.host} is already used by {owner}")
                break
        taken.append((host, spec.port, f"node '{spec.id}'"))
        if not is_loopback(spec.host) and not secret:
            host_line = fields["host"].line if "host" in fields else spec.line
            check.error(host_line, f"nodes.{spec.id}.host",
                        f"'{spec.host}' is not a loopback address: a non-loopback node needs "
                        f"a 'secret' in the topology (or the {SECRET_ENV} environment variable)")


# ---------------------------------------------------------------- the http section

_HTTP_KEYS = {"enabled", "host", "port"}


def _read_http(check: _Checker, item: _Located | None, nodes: dict[str, NodeSpec],
               supervisor: SupervisorSettings | None, secret: str | None) -> HttpSettings | None:
    """`http: {enabled, host, port}`: the status page and /metrics (supervisor/web).

    Off loopback it needs the secret (a strong one, as for a node off
    loopback), and its port may not be one a node or the control port uses.
    """
    if item is None:
        settings = HttpSettings()
    else:
        section = check.mapping(item, "http", _HTTP_KEYS)
        if section is None:
            return None
        values: dict[str, Any] = {}
        if "enabled" in section:
            values["enabled"] = check.boolean(section["enabled"], "http.enabled")
        if "host" in section:
            values["host"] = check.text(section["host"], "http.host")
        if "port" in section:
            values["port"] = check.integer(section["port"], "http.port", 1, 65535)
        if None in values.values():
            return None
        settings = HttpSettings(**values)
    explicit = item is not None and isinstance(item.value, dict) and "port" in item.value
    if not explicit and supervisor is not None:
        # Next to this cluster's control port (3946 for the default topology's 3947), so
        # two clusters of one machine do not both want 3946; unless a node has it.
        beside = supervisor.control_port - 1
        if beside >= 1 and all(spec.port != beside for spec in nodes.values()):
            settings = replace(settings, port=beside)
    if not settings.enabled:
        return settings
    section_line = item.line if item is not None else 1
    lines = item.key_lines if item is not None and isinstance(item.value, dict) else {}
    host_line, port_line = lines.get("host", section_line), lines.get("port", section_line)
    if settings.needs_secret:
        if not secret:
            check.error(host_line, "http.host",
                        f"'{settings.host}' is not a loopback address: the status page off "
                        f"loopback needs a 'secret' in the topology (or the {SECRET_ENV} "
                        f"environment variable), asked as a bearer token")
        elif len(secret) < MIN_SECRET_CHARS:
            check.error(host_line, "http.host",
                        f"'{settings.host}' is not a loopback address: the secret guarding "
                        f"the status page there needs at least {MIN_SECRET_CHARS} characters")
    host = "127.0.0.1" if settings.host == "localhost" else settings.host
    wildcard = {"0.0.0.0", "::"}
    taken = [(spec.host, spec.port, f"node '{spec.id}'") for spec in nodes.values()]
    if supervisor is not None:
        taken.insert(0, ("127.0.0.1", supervisor.control_port, "supervisor.control_port"))
    for other_host, other_port, owner in taken:
        other_host = "127.0.0.1" if other_host == "localhost" else other_host
        if other_port == settings.port and (other_host == host or wildcard & {host, other_host}):
            hint = "" if item is not None and "port" in lines else " (the default; set http.port)"
            check.error(port_line, "http.port",
                        f"port {settings.port} on {settings.host} is already used by {owner}{hint}")
            break
    return settings
