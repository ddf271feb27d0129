"""`./tahiry client` (also `python -m nodes.client`, `tahiry-client`): options and modes.

    ./tahiry client [--host H] [--port P]         interactive, via the proxy cache
    ./tahiry client --embedded DIR                the engine in-process on DIR
    ./tahiry client -e "alaivo 1;" -f script.tah  run statements, then exit
    ./tahiry client --format json -f script.tah   one JSON object per statement
    ./tahiry client --format csv -e "alaivo ..."  RFC 4180 result sets
    ./tahiry client --user ana                    log in (password: TAHIRY_PASSWORD or a prompt)

`-e` and `-f` may be repeated and run in the order given. With neither,
the client is interactive on a terminal and reads statements from stdin
otherwise. Files and stdin are streamed (any size) and, to a node,
pipelined: up to 64 statements in flight, answers shown in order; a long
file run on a terminal shows a progress line on stderr. Exit status: 0
when every statement succeeded, 1 when one failed (every statement still
runs), 2 when the client could not start and ran nothing (nothing
listening, a refused login, unreadable file, bad arguments, a `-d DB` the
node refused). A reader that goes away (`| head -1`) or Ctrl-C ends
the client without a traceback, however it was started. docs/CLIENT.md
is the user's guide.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Sequence

from engine.language.script_source import ScriptSource, unreadable
from engine.progress import ProgressLine
from nodes.client.batch import MAX_STATEMENT_CHARS, run_script, run_text
from nodes.client.connection import (
    PASSWORD_ENV,
    AuthenticationFailed,
    ConnectionProblem,
    NotListening,
)
from nodes.client.display import FORMATS, Display, Settings
from nodes.client.explain import LANGUAGES, LanguageUnavailable
from nodes.client.runners import EmbeddedRunner, RemoteRunner, Runner
from nodes.errors import NodeError
from nodes.protocol.tls import TlsConfigError, add_tls_arguments, client_context, settings_from_arguments

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3951             # the local proxy cache
EXIT_OK, EXIT_FAILED, EXIT_CANNOT_START = 0, 1, 2


class _RefusePassword(argparse.Action):
    """`--password`: refused without echoing it (a command line is seen by `ps` and kept in
    shell histories)."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"a password is never given on the command line (ps shows it): set "
                     f"{PASSWORD_ENV} or type it at the prompt of --user")


class _AppendSource(argparse.Action):
    """Collects -e and -f into one list, keeping their order on the command line."""

    def __call__(self, parser, namespace, values, option_string=None):
        sources = list(getattr(namespace, "sources", None) or [])
        sources.append((self.dest, values))
        namespace.sources = sources


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="./tahiry client",
        description="Tahiry client: type statements ending with ';' (fanampiana for help, "
                    "\\? for the client's commands). Run it as ./tahiry client from the "
                    "repository, or as tahiry-client / python -m nodes.client from its venv.",
        epilog="Without -e/-f: interactive on a terminal, else statements are read from stdin. "
               "Exit status: 0 all statements succeeded, 1 some failed (all still ran), "
               "2 the client could not start and ran nothing (nothing listening, a refused "
               "login, unreadable file, a -d DB the node refused). "
               "Guide: docs/CLIENT.md.")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"node to talk to (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"its port (default {DEFAULT_PORT}, the local proxy cache)")
    parser.add_argument("--user", metavar="NAME",
                        help=f"log in to account NAME (a cluster with accounts); the password "
                             f"comes from {PASSWORD_ENV}, else it is asked for (never an argument)")
    parser.add_argument("--password", nargs="?", action=_RefusePassword, help=argparse.SUPPRESS)
    parser.add_argument("--embedded", metavar="DIR",
                        help="run the engine in this process on data directory DIR (no server)")
    parser.add_argument("-e", dest="statements", metavar="STATEMENTS", action=_AppendSource,
                        help="run these statements and exit (repeatable)")
    parser.add_argument("-f", dest="file", metavar="FILE", action=_AppendSource,
                        help="run the statements of FILE ('-' for stdin) and exit (repeatable)")
    parser.add_argument("-d", "--database", metavar="DB",
                        help="start in database DB (as if the first statement were 'ampiasao DB;')")
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="table (default); json: one JSON object per statement per line; "
                             "csv: RFC 4180 result sets with a header (messages to stderr)")
    parser.add_argument("--no-pager", dest="pager", action="store_false",
                        help="never page results taller than the terminal "
                             "(default: $PAGER, else less -S)")
    parser.add_argument("--lang", choices=LANGUAGES, default="mg",
                        help="language of error messages: mg (default, as sent) or en")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for one statement's answer (default 60)")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour errors and messages (default: on a terminal)")
    add_tls_arguments(parser, client=True)
    parser.set_defaults(sources=[])
    return parser


class CannotStart(NodeError):
    """The client cannot begin (its text says why)."""


class DatabaseRefused(CannotStart):
    """`-d DB` was refused by the node (no such database, no read right): nothing runs."""

    def __init__(self, database: str, message: str):
        super().__init__(message)
        self.database = database


def make_runner(options: argparse.Namespace) -> Runner:
    if options.embedded:
        if options.user:
            raise CannotStart("--user needs a node: an embedded engine has no accounts")
        runner: Runner = EmbeddedRunner(options.embedded)
    else:
        try:
            tls = client_context(settings_from_arguments(options))
        except TlsConfigError as error:
            raise CannotStart(str(error)) from None
        login = (options.user, account_password(options.user)) if options.user else None
        runner = RemoteRunner(options.host, options.port, timeout=options.timeout,
                              notify=_notice, tls=tls, login=login)
        runner.connect()       # say "nothing is listening" before anything else
    if options.database:
        outcome = runner.run(f"ampiasao {options.database}")
        if outcome is None or not outcome.ok:
            runner.close()
            raise DatabaseRefused(options.database,
                                  outcome.message if outcome else "empty database name")
    return runner


def account_password(user: str, environ=None, prompt=getpass.getpass) -> str:
    """The password of `user`: TAHIRY_PASSWORD, else typed at a prompt (not echoed)."""
    password = (os.environ if environ is None else environ).get(PASSWORD_ENV, "")
    if password:
        return password
    if prompt is getpass.getpass and not _has_terminal():
        # getpass would warn, then read the password from standard input: the first
        # line of the statements piped in.
        raise CannotStart(f"no terminal to ask the password of {user} on: set {PASSWORD_ENV}")
    try:
        password = prompt(f"Tenimiafina / password of {user}: ")
    except (EOFError, OSError):
        password = ""
    if not password:
        raise CannotStart(f"no password for {user}: type it at the prompt or set {PASSWORD_ENV}")
    return password


def _has_terminal() -> bool:
    try:
        with open("/dev/tty"):
            return True
    except OSError:
        return False


def _quiet_logging() -> None:
    """Keep the in-process engine's log records off the user's terminal.

    An internal error already reaches the user as a `Hadisoana : ` line; its
    traceback goes to stderr only when TAHIRY_DEBUG is set.
    """
    root = logging.getLogger()
    if os.environ.get("TAHIRY_DEBUG"):
        logging.basicConfig(level=logging.DEBUG)
    elif not root.handlers:
        root.addHandler(logging.NullHandler())


def _notice(text: str) -> None:
    """What the runner does on its own (waiting for a restarting node): on stderr."""
    print(f"tahiry: {text}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """The client's exit status; a reader gone away or Ctrl-C end it without a traceback."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `... | head`: the reader went away. Point stdout at nothing so the
        # interpreter's last flush does not complain about the pipe again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1


def _main(argv: Sequence[str] | None) -> int:
    options = build_parser().parse_args(argv)
    _quiet_logging()
    for stream in (sys.stdin, sys.stdout):
        # Bytes that are not UTF-8 must not end the client with a traceback.
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    if not 0 < options.port < 65536:
        print(f"tahiry: --port {options.port} is not a TCP port", file=sys.stderr)
        return EXIT_CANNOT_START
    if options.timeout <= 0:
        print("tahiry: --timeout must be positive", file=sys.stderr)
        return EXIT_CANNOT_START
    interactive = not options.sources and sys.stdin.isatty()
    colour = options.color == "always" or (options.color == "auto" and sys.stdout.isatty()
                                           and "NO_COLOR" not in os.environ)
    display = Display(options.format, sys.stdout, colour and options.format == "table",
                      Settings(pager=options.pager))
    try:
        display.set_lang(options.lang)
    except LanguageUnavailable as unavailable:
        print(f"tahiry: --lang {options.lang}: {unavailable}", file=sys.stderr)
        return EXIT_CANNOT_START
    if not interactive:
        sources = options.sources or [("file", "-")]
        for kind, value in sources:
            problem = unreadable(value) if kind == "file" else None
            if problem:
                print(f"tahiry: cannot read {value}: {problem}", file=sys.stderr)
                return EXIT_CANNOT_START
    try:
        runner = make_runner(options)
    except (ConnectionProblem, CannotStart) as problem:
        # (-d DB refused by the node: its error, in the language asked for, after the
        # option it refused.)
        text = str(problem) if display.translate is None else display.translate(str(problem))
        if isinstance(problem, DatabaseRefused):
            text = f"-d {problem.database}: {text}"
        print(f"tahiry: {text}", file=sys.stderr)
        return EXIT_CANNOT_START
    except OSError as error:      # embedded: the data directory cannot be used
        print(f"tahiry: cannot use {options.embedded}: {error.strerror or error}", file=sys.stderr)
        return EXIT_CANNOT_START
    try:
        if interactive:
            from nodes.client.repl import Repl
            return Repl(runner, display).run()
        return run_sources(sources, runner, display)
    except (NotListening, AuthenticationFailed) as problem:
        print(f"tahiry: {problem}", file=sys.stderr)
        return EXIT_CANNOT_START
    finally:
        runner.close()
        display.output_to(None)   # a `\o` file is closed (flushed)


def run_sources(sources: list[tuple[str, str]], runner: Runner, display: Display) -> int:
    """Run each -e text or -f file (`-`: stdin) in order; the exit status."""
    all_ok = True
    for kind, value in sources:
        if kind == "statements":
            result = run_text(value, runner, display, pipelined=True)
        else:
            try:
                script = ScriptSource.open(value, name="stdin" if value == "-" else value,
                                           errors="replace", max_chars=MAX_STATEMENT_CHARS)
            except OSError as error:
                display.failure(f"cannot read {value}: {error.strerror or error}")
                all_ok = False
                continue
            with script:
                result = run_script(script, runner, display, source=script.name,
                                    progress=ProgressLine(sys.stderr, script.name))
        all_ok = all_ok and result.ok
        if result.quit:
            break
    return EXIT_OK if all_ok else EXIT_FAILED
