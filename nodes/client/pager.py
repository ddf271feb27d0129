"""Showing text taller than the terminal through a pager ($PAGER, else `less -S`).

Only for a terminal: output to a file (`\\o`), a pipe or `--no-pager` is
written as it is. A pager that cannot be started (not installed, $PAGER
wrong) falls back to writing the text, with one line saying why; the user
quitting the pager early (`q` in less) is normal, not an error.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from typing import TextIO

DEFAULT_PAGER = "less -S"


def pager_command(environ=os.environ) -> list[str] | None:
    """The pager to run ($PAGER; `less -S` when unset; None when set to nothing)."""
    text = environ.get("PAGER")
    if text is None:
        text = DEFAULT_PAGER
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    return words or None


def page(text: str, out: TextIO, command: list[str] | None) -> bool:
    """Show `text` in the pager; False when it could not run (the caller writes the text)."""
    if command is None:
        return False
    out.flush()
    environment = dict(os.environ)
    environment.setdefault("LESS", "-R")   # colours pass through; -S comes from the command
    try:
        pager = subprocess.Popen(command, stdin=subprocess.PIPE, env=environment,
                                 encoding="utf-8", errors="replace")
    except OSError as error:
        out.write(f"(pager {command[0]}: {error.strerror or error}; shown without it)\n")
        return False
    try:
        assert pager.stdin is not None
        pager.stdin.write(text)
        pager.stdin.close()
    except BrokenPipeError:
        pass    # the user left the pager before reading everything
    while True:
        try:
            pager.wait()
            return True
        except KeyboardInterrupt:
            continue   # Ctrl-C belongs to the pager while it runs
