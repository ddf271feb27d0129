"""The embedded runner: run statements on a data directory with no server.

    python -m engine --data DIR [-e 'STATEMENTS'] [-f FILE] [--format table|json]

Reads standard input when neither -e nor -f is given. A file or stdin of any
size is streamed (`engine.language.script_source`): each statement runs as soon as
its `;` has been read, and only the statement at hand is held in memory;
the length limit is one statement's. Every statement runs and is reported,
even after an earlier one failed; the exit status is 0 when every statement
succeeded, 1 otherwise, 2 when the runner could not start (or a file turned
out not to be UTF-8: the statements before that point have run). On a
terminal, a long file run shows a progress line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from engine.errors import ERROR_PREFIX, TahiryError
from engine.evaluation.render import render_json, render_outcome
from engine.language.script_source import ScriptSource, unreadable
from engine.progress import ProgressLine
from engine.session import Session
from engine.storage.data_owner import DirectoryTaken, OwnerLock, OwnerRecord
from engine.storage.store import Store


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
        # It holds the directory: recovery at open, checkpoints at the end.
        session = Session(Store(arguments.data, exclusive=True))
    except DirectoryTaken as error:
        print(f"{ERROR_PREFIX}Efa ampiasain'ny mpizara hafa ny lahatahiry {arguments.data} "
              f"({error})", file=sys.stderr)
        return 2
    except (OSError, TahiryError) as error:
        print(f"{ERROR_PREFIX}Tsy afaka manokatra ny lahatahiry {arguments.data} ({error})",
              file=sys.stderr)
        return 2
    files = list(arguments.files or [])
    if not arguments.statements and not arguments.files:
        files.append("-")
    for path in files:
        problem = unreadable(path)
        if problem:
            owner.release()
            print(f"{ERROR_PREFIX}Tsy voavaky ny rakitra {path} ({problem})", file=sys.stderr)
            return 2
    limit = session.limits.max_statement_chars
    scripts = [lambda text=text: ScriptSource(text=text, max_chars=limit)
               for text in arguments.statements or []]
    scripts += [lambda path=path: ScriptSource.open(path, max_chars=limit) for path in files]
    try:
        return _run(session, scripts, arguments.format)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        session.store.checkpoint_all()   # every .json holds its table when we are done
        owner.release()


def _run(session: Session, scripts, output_format: str) -> int:
    """Run each script (a function opening its `ScriptSource`) in order; the exit status."""
    all_ok = True
    for open_script in scripts:
        try:
            source = open_script()
        except OSError as error:
            print(f"{ERROR_PREFIX}Tsy voavaky ny rakitra ({error})", file=sys.stderr)
            return 2
        with source:
            progress = ProgressLine(sys.stderr, source.name) if source.name else None
            try:
                all_ok = _run_source(session, source, output_format, progress) and all_ok
            except (OSError, UnicodeDecodeError) as error:
                if progress is not None:
                    progress.clear()
                print(f"{ERROR_PREFIX}Tsy voavaky ny rakitra {source.name or ''} ({error})",
                      file=sys.stderr)
                return 2
            finally:
                if progress is not None:
                    progress.finish()
    sys.stdout.flush()
    return 0 if all_ok else 1


def _run_source(session: Session, source: ScriptSource, output_format: str,
                progress: ProgressLine | None) -> bool:
    all_ok, done, errors = True, 0, 0
    for piece in source:
        outcome = session.run_piece(piece)
        if outcome is None:
            continue
        done += 1
        all_ok = all_ok and outcome.ok
        to_stderr = output_format != "json" and not outcome.ok
        if progress is not None:
            progress.clear_for(sys.stderr if to_stderr else sys.stdout)
        if output_format == "json":
            print(render_json(outcome), flush=True)
        elif outcome.ok:
            print(render_outcome(outcome), flush=True)
        else:
            sys.stdout.flush()
            print(outcome.message, file=sys.stderr, flush=True)
        if not outcome.ok:
            errors += 1
        if progress is not None:
            progress.update(done, errors, source.estimated_total())
    return all_ok


if __name__ == "__main__":
    sys.exit(main())
