"""The embedded runner: run statements on a data directory with no server.

    python -m engine --data DIR [-e 'STATEMENTS'] [-f FILE] [--format table|json]

Reads standard input when neither -e nor -f is given. Every statement runs
and is reported, even after an earlier one failed; the exit status is 0 when
every statement succeeded, 1 otherwise, 2 when the runner could not start.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from engine.data_owner import DirectoryTaken, OwnerLock, OwnerRecord
from engine.errors import ERROR_PREFIX, TahiryError
from engine.render import render_json, render_outcome
from engine.session import Session
from engine.storage import Store


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m engine", description="Run Tahiry statements on a data directory.")
    parser.add_argument("--data", required=True, metavar="DIR", help="data directory")
    parser.add_argument("-e", dest="statements", metavar="STATEMENTS", action="append",
                        help="statements to run (may be repeated)")
    parser.add_argument("-f", dest="files", metavar="FILE", action="append",
                        help="file of statements to run (may be repeated; - is stdin)")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--debug", action="store_true", help="log internal errors to stderr")
    return parser.parse_args(argv)


def _read_file(path: str) -> str:
    if path == "-":
        return _without_bom(sys.stdin.read())
    with open(path, encoding="utf-8") as handle:
        return _without_bom(handle.read())


def _without_bom(text: str) -> str:
    """Text without the byte order mark some editors put at the start of UTF-8 files."""
    return text[1:] if text.startswith("\ufeff") else text


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    logging.basicConfig(level=logging.DEBUG if arguments.debug else logging.CRITICAL,
                        stream=sys.stderr)
    try:
        # The directory must not be a running server's: two writers that do
        # not certify against each other could lose each other's writes.
        owner = OwnerLock.acquire(Path(arguments.data), OwnerRecord(
            node="python -m engine", pid=os.getpid(), host="embedded", port=0,
            started=time.time()))
        session = Session(Store(arguments.data))
    except DirectoryTaken as error:
        print(f"{ERROR_PREFIX}Efa ampiasain'ny mpizara hafa ny lahatahiry {arguments.data} "
              f"({error})", file=sys.stderr)
        return 2
    except (OSError, TahiryError) as error:
        print(f"{ERROR_PREFIX}Tsy afaka manokatra ny lahatahiry {arguments.data} ({error})",
              file=sys.stderr)
        return 2
    scripts: list[str] = list(arguments.statements or [])
    try:
        scripts.extend(_read_file(path) for path in arguments.files or [])
    except (OSError, UnicodeDecodeError) as error:
        print(f"{ERROR_PREFIX}Tsy voavaky ny rakitra ({error})", file=sys.stderr)
        return 2
    if not arguments.statements and not arguments.files:
        scripts.append(_read_file("-"))
    try:
        return _run(session, scripts, arguments.format)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        owner.release()


def _run(session: Session, scripts: list[str], output_format: str) -> int:
    all_ok = True
    for script in scripts:
        for outcome in session.execute_iter(script):
            all_ok = all_ok and outcome.ok
            if output_format == "json":
                print(render_json(outcome), flush=True)
            elif outcome.ok:
                print(render_outcome(outcome), flush=True)
            else:
                sys.stdout.flush()
                print(outcome.message, file=sys.stderr, flush=True)
    sys.stdout.flush()
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
