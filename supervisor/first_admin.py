"""The first administrator of a cluster with `accounts:` on, and what the servers are told.

With accounts on, `up` needs the administrator's password while no account
exists yet: the servers create that account at start (`ensure_first_admin`,
when TAHIRY_ADMIN_USER and TAHIRY_ADMIN_PASSWORD are in their environment;
a certified write like any other, so two servers doing it at once end with
one account). `up` takes it from TAHIRY_ADMIN_PASSWORD, else asks for it
(typed twice, not echoed) when it runs in a terminal, else refuses to
start. Once the data directories hold accounts, no password is needed (one
given is still passed: the servers ignore it).

The password travels only through environments: never a command line
(`ps` shows every one), never a file, never a log. Only servers get it
(`node_environment`); balancers and proxy caches, which only forward
`.login`, never see it, even when the supervisor's own environment holds
it (docs/SECURITY.md, "Accounts").
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from engine.storage.atomic_files import is_temp_file
from engine.storage.object_format import ACCOUNT_FOLDER, SYSTEM_FOLDER, InvalidDocument
from engine.storage.object_state import version_of

from .errors import SupervisorError
from .topology import NodeSpec, Topology

ADMIN_USER_ENV = "TAHIRY_ADMIN_USER"
ADMIN_PASSWORD_ENV = "TAHIRY_ADMIN_PASSWORD"
MIN_ADMIN_PASSWORD_CHARS = 8


class AdminPasswordMissing(SupervisorError):
    """Accounts are on, none exists yet, and no administrator password was given."""


def password_problem(password: str) -> str | None:
    """What is wrong with an administrator password (the message never shows it)."""
    if len(password) < MIN_ADMIN_PASSWORD_CHARS:
        return (f"too short: {len(password)} character(s), an administrator's password needs "
                f"at least {MIN_ADMIN_PASSWORD_CHARS}")
    if any(ord(char) < 32 or ord(char) == 127 for char in password):
        return "it holds a control character (a line break, a tab, ...)"
    if password != password.strip():
        return "it starts or ends with a space"
    return None


def accounts_exist(data_dirs: Iterable[Path]) -> bool:
    """Whether any of these data directories already holds a live account.

    A read-only look, as the replicator reads objects (engine/storage/
    object_state.py: no symlink followed, tombstones are not accounts);
    a file it cannot read counts as no account (then `up` asks).
    """
    folder = f"{SYSTEM_FOLDER}/{ACCOUNT_FOLDER}"
    for data in data_dirs:
        try:
            names = sorted(os.listdir(Path(data) / folder))
        except OSError:
            continue
        for name in names:
            if not name.endswith(".json") or is_temp_file(name):
                continue
            try:
                version = version_of(data, f"{folder}/{name}")
            except (OSError, InvalidDocument):
                continue
            if version is not None and not version.dropped:
                return True
    return False


def admin_password_for_up(topology: Topology, environ: Mapping[str, str] | None = None,
                          interactive: bool | None = None,
                          prompt: Callable[[str], str] = getpass.getpass) -> str | None:
    """The password to hand the servers (None: accounts off, no server here, or not needed).

    Raises AdminPasswordMissing (nothing has started yet) when it is needed
    and neither the environment nor a terminal gives one, or when the one
    given is refused (too short, typed differently twice).
    """
    environ = os.environ if environ is None else environ
    servers = topology.local_of_kind("server")
    if not topology.accounts.enabled or not servers:
        return None
    admin = topology.accounts.admin
    given = environ.get(ADMIN_PASSWORD_ENV)
    if accounts_exist(server.data_dir for server in servers):
        # Passed, and ignored by the servers: no reason to refuse the start for it.
        return given or None
    if given:
        if (problem := password_problem(given)) is not None:
            raise AdminPasswordMissing(f"{ADMIN_PASSWORD_ENV}: {problem}")
        return given
    if interactive is None:
        interactive = sys.stdin.isatty()
    if not interactive:
        raise AdminPasswordMissing(
            f"accounts are on and no account exists yet: the first administrator ({admin}) "
            f"needs a password: set {ADMIN_PASSWORD_ENV} in the environment, or run `up` in "
            f"a terminal (it asks)")
    try:
        password = prompt(f"password of the administrator {admin} (first start of the "
                          f"accounts; not shown): ")
        if (problem := password_problem(password)) is not None:
            raise AdminPasswordMissing(f"the administrator's password: {problem}")
        if prompt("the same password again: ") != password:
            raise AdminPasswordMissing("the two passwords differ")
    except EOFError:
        raise AdminPasswordMissing("no password typed") from None
    return password


def node_environment(topology: Topology, spec: NodeSpec, base: Mapping[str, str],
                     admin_password: str | None) -> dict[str, str]:
    """`base` for one node: the administrator's name and password for a server with accounts
    on when there is a password to give (the server wants both or neither), and neither for
    any other node (whatever `base` held)."""
    env = {key: value for key, value in base.items()
           if key not in (ADMIN_USER_ENV, ADMIN_PASSWORD_ENV)}
    if spec.kind == "server" and topology.accounts.enabled and admin_password:
        env[ADMIN_USER_ENV] = topology.accounts.admin
        env[ADMIN_PASSWORD_ENV] = admin_password
    return env
