"""`python -m supervisor accounts TOPOLOGY create-class NAMES.csv --out PASSWORDS.csv | reset NAME
| remove-class NAMES.csv --keep FOLDER`.

The teacher's commands of a cluster with `accounts:` on (docs/SECURITY.md,
"Running a class"). Both connect as the administrator (the topology's
`accounts.admin`, or `--user`) through the DB-API driver, to the first
balancer (else the first server), with the topology's secret and TLS
files; the administrator's password comes from TAHIRY_ADMIN_PASSWORD or a
prompt, never from the command line.

`create-class` reads one name a line (the first column of a CSV file, its
columns separated by `,`, or by `;` or a tab as spreadsheets save them; an
optional header `name` or `anarana`; blank lines and lines starting with
`#` skipped), checks every name first (a bad or repeated name, naming its
line, changes nothing), then creates an account with a new password for
each name that has none yet. An account that exists already is reported
and left as it is (its password is not changed). The out-file gets one
line per name (`name,password,status`), is created 0600 before any
account is (so a folder it cannot be written to changes nothing), and
appears at once when complete (a temp file renamed): it is never left half
written, and an existing file (passwords handed out earlier) is never
replaced. `reset NAME` gives one account a new password and prints it
once. `remove-class` (the end of a term) removes each listed account, then
each database it owns once a copy of it (supervisor/database_copy.py) is
in FOLDER/NAME/; never an administrator, never into a FOLDER that exists.

Passwords come from `secrets`: 15 characters in three groups, from an
alphabet without look-alikes (0/O, 1/l/I), about 87 bits.
"""

from __future__ import annotations

import csv
import getpass
import io
import os
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.evaluation.accounts import YES
from engine.storage.atomic_files import fsync_folder, temp_path_for, unlink_quietly, write_all
from nodes.protocol.wire import STOP_WORD

from .account_names import name_problem
from .errors import SupervisorError
from .first_admin import ADMIN_PASSWORD_ENV
from .topology import NodeSpec, Topology

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
GROUPS, GROUP_CHARS = 3, 5
HEADER_WORDS = ("name", "anarana")
OUT_COLUMNS = ("name", "password", "status")

# The statements (docs/LANGUAGE.md, "Accounts"); names are checked by name_problem and
# passwords drawn from ALPHABET, so neither needs quoting beyond the literal's quotes.
LIST_ACCOUNTS = "asehoy ny mpampiasa"
CREATE_ACCOUNT = 'manamboara mpampiasa {name} tenimiafina "{password}"'
CHANGE_PASSWORD = 'ovay ny tenimiafina {name} "{password}"'
DROP_ACCOUNT = "ravao ny mpampiasa {name}"
DROP_DATABASE = "ravao ny tahiry {name}"


class AccountsCommandError(SupervisorError):
    """The command cannot run (accounts off, no password, no node to reach)."""


def new_password() -> str:
    """A strong password to hand out: three groups of five from ALPHABET, joined with '-'."""
    return "-".join("".join(secrets.choice(ALPHABET) for _ in range(GROUP_CHARS))
                    for _ in range(GROUPS))


@dataclass(frozen=True)
class ClassList:
    names: list[str]
    problems: list[str]


def column_separator(text: str) -> str:
    """The separator of a class file's columns: ',' unless its first line has none and has a
    ';' (a spreadsheet saving "CSV" in a French locale, as in Madagascar) or a tab."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "," not in first:
        for separator in (";", "\t"):
            if separator in first:
                return separator
    return ","


def read_names(path: Path) -> ClassList:
    """The names of a class file, in order, with every problem found (naming file and line)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=column_separator(text)))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        return ClassList([], [f"{path.name}: cannot read the file: {error}"])
    names: list[str] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        cell = row[0].strip() if row else ""
        if not cell or cell.startswith("#"):
            continue
        if not names and not problems and cell.lower() in HEADER_WORDS:
            continue   # the header
        problem = name_problem(cell)
        if problem is not None:
            problems.append(f"{path.name} line {number}: {problem}")
        elif cell in first_line:
            problems.append(f"{path.name} line {number}: {cell!r} is already on line "
                            f"{first_line[cell]}")
        else:
            first_line[cell] = number
            names.append(cell)
    if not names and not problems:
        problems.append(f"{path.name}: no name in the file (one name a line)")
    return ClassList(names, problems)


def admin_password(environ: Mapping[str, str], user: str,
                   prompt: Callable[[str], str] = getpass.getpass,
                   interactive: bool | None = None) -> str:
    given = environ.get(ADMIN_PASSWORD_ENV)
    if given:
        return given
    if interactive is None:
        interactive = sys.stdin.isatty()
    if not interactive:
        raise AccountsCommandError(f"the password of {user} is needed: set {ADMIN_PASSWORD_ENV} "
                                   f"or run the command in a terminal (it asks)")
    try:
        return prompt(f"password of {user}: ")
    except EOFError:
        raise AccountsCommandError("no password typed") from None


def entry_node(topology: Topology) -> NodeSpec:
    """Where the administrator connects: the first balancer (it survives a server's failure),
    else the first server. Not a proxy cache: these are writes and listings of accounts."""
    for kind in ("balancer", "server"):
        nodes = topology.of_kind(kind)
        if nodes:
            return nodes[0]
    raise AccountsCommandError(f"{topology.path.name}: no balancer or server to connect to")


def connect_as(topology: Topology, user: str, password: str, node: NodeSpec | None = None):
    """A DB-API connection logged in as `user`, to `node` (default: `entry_node`)
    (AccountsCommandError if it cannot be had)."""
    from nodes.client.driver import OperationalError, connect  # only this command needs it

    node = node if node is not None else entry_node(topology)
    tls = topology.tls
    try:
        return connect(node.host, node.port, timeout=30.0, user=user, password=password,
                       secret=topology.secret, tls_ca=str(tls.ca) if tls.ca else None,
                       tls_cert=str(tls.cert) if tls.cert else None,
                       tls_key=str(tls.key) if tls.key else None)
    except OperationalError as error:   # unreachable, or the login refused
        raise AccountsCommandError(f"cannot log in as {user} on {node.id} ({node.address}): "
                                   f"{error}") from None


@dataclass(frozen=True)
class Account:
    """One row of `asehoy ny mpampiasa` (docs/LANGUAGE.md, "Accounts and rights")."""

    name: str
    admin: bool
    owns: list[str]   # the databases whose owner is this name


def list_accounts(connection) -> dict[str, Account]:
    """Every account, by name, as an administrator sees them."""
    cursor = connection.cursor()
    cursor.execute(LIST_ACCOUNTS)
    listed: dict[str, Account] = {}
    for row in cursor.fetchall():
        if not row:
            continue
        owns = str(row[2]).split(", ") if len(row) > 2 and row[2] else []
        listed[str(row[0])] = Account(str(row[0]), len(row) > 1 and row[1] == YES, owns)
    return listed


def existing_accounts(connection) -> set[str]:
    return set(list_accounts(connection))


CREATED, EXISTS = "created", "exists (password not changed)"
NOT_TRIED = "not tried (interrupted)"


@dataclass
class Outcome:
    name: str
    password: str
    status: str   # CREATED, EXISTS, NOT_TRIED or "failed: <why>"


def create_accounts(connection, names: list[str], outcomes: list[Outcome]) -> None:
    """Create the accounts that do not exist yet, appending one outcome per name as it goes
    (so what was done is known even if it is interrupted); stop at a lost connection."""
    from nodes.client.driver import DatabaseError, OperationalError

    existing = existing_accounts(connection)
    cursor = connection.cursor()
    for index, name in enumerate(names):
        if name in existing:
            outcomes.append(Outcome(name, "", EXISTS))
            continue
        password = new_password()
        try:
            cursor.execute(CREATE_ACCOUNT.format(name=name, password=password))
        except OperationalError as error:   # the connection: the rest cannot be done
            outcomes.append(Outcome(name, "", f"failed: {error}"))
            outcomes.extend(Outcome(left, "", NOT_TRIED) for left in names[index + 1:])
            return
        except DatabaseError as error:
            outcomes.append(Outcome(name, "", f"failed: {error}"))
            continue
        outcomes.append(Outcome(name, password, CREATED))


def inherited_databases(connection, outcomes: list[Outcome]) -> dict[str, list[str]]:
    """The databases each account just created already owns: left by a dropped account of
    the same name (a database keeps its owner's name, docs/LANGUAGE.md), so the new
    student may read, change and drop a former student's work."""
    created = {outcome.name for outcome in outcomes if outcome.status == CREATED}
    if not created:
        return {}
    return {account.name: account.owns for account in list_accounts(connection).values()
            if account.name in created and account.owns}


class PrivateFile:
    """A new file at `path`, 0600 from its first byte, that appears only when `publish`ed."""

    def __init__(self, path: Path):
        if path.exists() or path.is_symlink():
            raise AccountsCommandError(f"{path} exists: it may hold passwords handed out "
                                       f"earlier; choose another --out")
        if not path.parent.is_dir():
            raise AccountsCommandError(f"{path.parent} is not a folder")
        self.path = path
        self.temp = temp_path_for(path)
        try:
            self.descriptor = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            raise AccountsCommandError(f"cannot write {path}: {error.strerror}") from None
        os.fchmod(self.descriptor, 0o600)

    def publish(self, text: str) -> None:
        try:
            write_all(self.descriptor, text.encode("utf-8"))
            os.fsync(self.descriptor)
            os.close(self.descriptor)
            self.descriptor = -1
            os.link(self.temp, self.path)   # never replaces a file that appeared meanwhile
            unlink_quietly(self.temp)
            fsync_folder(self.path.parent)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        if self.descriptor >= 0:
            os.close(self.descriptor)
            self.descriptor = -1
        unlink_quietly(self.temp)


def out_text(outcomes: list[Outcome]) -> str:
    """The out-file: a header, then `name,password,status` per name of the class file."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(OUT_COLUMNS)
    writer.writerows([outcome.name, outcome.password, outcome.status] for outcome in outcomes)
    return text.getvalue()


# -- the commands

def _reported(names: ClassList) -> bool:
    """Whether the class list has problems (then each is printed, and nothing is done)."""
    for problem in names.problems:
        print(problem, file=sys.stderr)
    if names.problems:
        print("nothing was changed.", file=sys.stderr)
    return bool(names.problems)


def create_class(topology: Topology, names_file: Path, out: Path, user: str,
                 environ: Mapping[str, str]) -> int:
    names = read_names(names_file)
    if _reported(names):
        return EXIT_INVALID
    target = PrivateFile(out)   # before any account: a file it cannot write changes nothing
    outcomes: list[Outcome] = []
    try:
        connection = connect_as(topology, user, admin_password(environ, user))
        try:
            create_accounts(connection, names.names, outcomes)
            inherited = inherited_databases(connection, outcomes)
        finally:
            connection.close()
    except BaseException:
        if not any(outcome.status == CREATED for outcome in outcomes):
            target.discard()
            raise
        # Interrupted after some accounts were made: their passwords must not be lost.
        done = {outcome.name for outcome in outcomes}
        outcomes.extend(Outcome(name, "", NOT_TRIED) for name in names.names if name not in done)
        target.publish(out_text(outcomes))
        print(f"interrupted; the accounts created so far are in {out}", file=sys.stderr)
        raise
    target.publish(out_text(outcomes))
    created = [o.name for o in outcomes if o.status == CREATED]
    kept = [o.name for o in outcomes if o.status == EXISTS]
    failed = [o for o in outcomes if o.status not in (CREATED, EXISTS)]
    print(f"{len(created)} account(s) created; their passwords are in {out} (mode 0600): "
          f"hand each one its line, then keep the file safe or delete it.")
    if kept:
        print(f"{len(kept)} already existed and were left as they are (password not changed; "
              f"`reset NAME` gives a new one): {', '.join(kept)}")
    for name, owns in inherited.items():
        print(f"warning: the new account {name} owns {', '.join(owns)}: a database's owner is "
              f"a name, and a former account {name} made them; if they are not this "
              f"student's, keep a copy and drop them (`ravao ny tahiry DB;`)", file=sys.stderr)
    for outcome in failed:
        print(f"{outcome.name}: {outcome.status}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def reset(topology: Topology, name: str, user: str, environ: Mapping[str, str]) -> int:
    problem = name_problem(name)
    if problem is not None:
        print(f"{problem}; nothing was changed.", file=sys.stderr)
        return EXIT_INVALID
    password = new_password()
    connection = connect_as(topology, user, admin_password(environ, user))
    try:
        connection.cursor().execute(CHANGE_PASSWORD.format(name=name, password=password))
    finally:
        connection.close()
    print(f"new password of {name}: {password}")
    print("(shown once: hand it over now; the old one no longer works)")
    return EXIT_OK


def keep_folder(path: Path) -> Path:
    """A new folder, 0700, for the copies of the students' work (never one that exists)."""
    if path.exists() or path.is_symlink():
        raise AccountsCommandError(f"{path} exists: it may hold copies kept earlier; choose "
                                   f"another --keep")
    if not path.parent.is_dir():
        raise AccountsCommandError(f"{path.parent} is not a folder")
    try:
        path.mkdir(mode=0o700)
        path.chmod(0o700)   # whatever the umask
    except OSError as error:
        raise AccountsCommandError(f"cannot make {path}: {error.strerror}") from None
    return path


class StudentLeftAlone(Exception):
    """Nothing of a student was removed: their copies could not be taken (one sentence)."""


def remove_student(connection, servers: Callable[[], list], account: Account,
                   keep: Path) -> str:
    """Remove one student: the account first (their sessions' statements are refused from
    then on, so the copy misses nothing they write), then each database they own, each
    only once its copy is on disk, read alike from every server (`servers()`: a
    connection to each; supervisor/database_copy.py `settled_script`). A summary line;
    StudentLeftAlone when nothing was done; DatabaseError, AccountsCommandError or
    CopiesDisagree if a later step is refused.

    Before anything changes, every server is reached and each database's copies are
    compared once: a cluster whose copies differ now (replication stopped or behind, a
    server down) removes nothing of this student, so the command can simply be run
    again. Once the account is dropped its databases are no longer listed under it, and
    a run that stopped after the drop would leave them for the teacher to copy by hand.
    """
    from .database_copy import CopiesDisagree, settled_script

    if account.owns:
        try:
            reached = servers()
            for database in account.owns:
                settled_script(reached, database, [])
        except (AccountsCommandError, CopiesDisagree) as error:
            raise StudentLeftAlone(str(error)) from None
    folder = keep / account.name
    folder.mkdir(mode=0o700)
    folder.chmod(0o700)
    cursor = connection.cursor()
    cursor.execute(DROP_ACCOUNT.format(name=account.name))
    when = time.strftime("%Y-%m-%d %H:%M")
    for database in account.owns:
        header = [f"the database {database} of {account.name}, kept by `accounts remove-class` "
                  f"on {when}", f"recreate it: ./tahiry client -f {database}.tah"]
        PrivateFile(folder / f"{database}.tah").publish(
            settled_script(servers(), database, header))
        cursor.execute(DROP_DATABASE.format(name=database))
    owned = f" ({', '.join(account.owns)})" if account.owns else ""
    return (f"{account.name}: account removed; {len(account.owns)} database(s){owned} kept "
            f"in {folder} and dropped")


def remove_class(topology: Topology, names_file: Path, keep: Path, user: str,
                 environ: Mapping[str, str]) -> int:
    from nodes.client.driver import DatabaseError, OperationalError

    from .database_copy import CopiesDisagree

    names = read_names(names_file)
    if _reported(names):
        return EXIT_INVALID
    if keep.exists() or keep.is_symlink():   # before asking a password: nothing to do
        keep_folder(keep)
    password = admin_password(environ, user)
    connection = connect_as(topology, user, password)
    opened: list = []   # one connection to each server, opened at the first copy

    def servers() -> list:
        if not opened:   # every server or none (a copy compared on some only would not do)
            reached = []
            try:
                for node in topology.of_kind("server"):
                    reached.append(connect_as(topology, user, password, node))
            except AccountsCommandError:
                for server in reached:
                    server.close()
                raise
            opened.extend(reached)
        return opened
    failed = 0
    try:
        listed = list_accounts(connection)
        keep_folder(keep)
        for index, name in enumerate(names.names):
            account = listed.get(name)
            if account is None:
                print(f"{name}: no such account (nothing to do)")
                continue
            if account.admin:
                failed += 1
                print(f"{name}: an administrator, left as it is (`ravao ny mpampiasa {name};` "
                      f"removes one)", file=sys.stderr)
                continue
            try:
                print(remove_student(connection, servers, account, keep), flush=True)
            except StudentLeftAlone as error:
                failed += 1
                print(f"{name}: nothing removed: {error}; run the command again for {name} "
                      f"(with another --keep folder) once it can be read alike from every "
                      f"server", file=sys.stderr)
            except OperationalError as error:   # the connection: the rest cannot be done
                left = ", ".join(names.names[index + 1:])
                print(f"{name}: failed: {error}" + (f"; not tried: {left}" if left else ""),
                      file=sys.stderr)
                return EXIT_FAILED
            except (DatabaseError, AccountsCommandError, CopiesDisagree, OSError) as error:
                failed += 1
                print(f"{name}: failed: {error} (what was removed is listed above; what "
                      f"was not copied was not dropped)", file=sys.stderr)
    finally:
        for server in [connection, *opened]:
            server.close()
    return EXIT_FAILED if failed else EXIT_OK


def stop(topology: Topology, name: str, user: str, environ: Mapping[str, str]) -> int:
    """`.stop NAME;` on every server, straight (a balancer would answer it for itself): each
    stops the statement `name` runs there now (nodes/server/activity.py)."""
    from nodes.client.driver import DatabaseError
    from nodes.protocol import stopped_count

    problem = name_problem(name)
    if problem is not None:
        print(f"{problem}; nothing was changed.", file=sys.stderr)
        return EXIT_INVALID
    password = admin_password(environ, user)
    stopped, failed = 0, 0
    for node in topology.of_kind("server"):
        try:
            connection = connect_as(topology, user, password, node)
            try:
                cursor = connection.cursor()
                cursor.execute(f"{STOP_WORD} {name}")
                count = stopped_count(cursor.message) or 0
            finally:
                connection.close()
        except (AccountsCommandError, DatabaseError) as error:
            failed += 1
            print(f"{node.id}: {error}", file=sys.stderr)
            continue
        if count:
            stopped += count
            print(f"{node.id}: {count} statement(s) of {name} stopped (told: Najanon'ny "
                  f"mpitantana ny fangatahana)")
    if not stopped and not failed:
        print(f"nothing of {name} was running (a statement also stops by itself at its time "
              f"limit, 30 s; `reset {name}` refuses the rest of a script)")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_accounts(topology: Topology, args, environ: Mapping[str, str] | None = None) -> int:
    """`accounts create-class|reset`: the exit code (0 done, 1 failed, 2 bad input)."""
    from nodes.client.driver import Error as DriverError

    environ = os.environ if environ is None else environ
    if not topology.accounts.enabled:
        print(f"{topology.path.name}: accounts are off (add `accounts: true` and start the "
              f"cluster again); nothing was changed.", file=sys.stderr)
        return EXIT_INVALID
    user = args.user or topology.accounts.admin
    try:
        if args.action == "create-class":
            return create_class(topology, Path(args.names), Path(args.out), user, environ)
        if args.action == "remove-class":
            return remove_class(topology, Path(args.names), Path(args.keep), user, environ)
        if args.action == "stop":
            return stop(topology, args.name, user, environ)
        return reset(topology, args.name, user, environ)
    except AccountsCommandError as error:
        print(f"{error}; nothing was changed.", file=sys.stderr)
        return EXIT_FAILED
    except DriverError as error:
        print(f"{error}", file=sys.stderr)
        return EXIT_FAILED
