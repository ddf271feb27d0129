"""The client's own commands (`\\x`, `\\d`, `\\o`, ...): what they are, as data, and what they do.

`COMMANDS` lists every command once: its names, arguments, one line of
help (the `\\?` list and docs/CLIENT.md are made from it) and its kind.
`client_command(text)` recognises one (backslash commands with or without
`;`, a word command such as `miala` only alone). Most change the
`Display`'s settings (`apply`); `\\d` becomes a statement of the language
(`asehoy ny tsanganana [ao@ T];`, answered by the node like any other);
`quit`, `help` and `\\i FILE` are handled by the script runner
(nodes/client/batch.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nodes.client.display import EXPANDED_MODES, Display
from nodes.client.explain import LanguageUnavailable
from nodes.errors import NodeError


@dataclass(frozen=True)
class CommandSpec:
    """One client command: names (the first is the one listed), arguments, help, kind."""

    names: tuple[str, ...]
    arguments: str
    help: str
    kind: str
    max_arguments: int = 0


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(("\\?",), "", "ity lisitra ity / this list of client commands", "commands"),
    CommandSpec(("fanampiana", "\\h", "?", "help"), "[KEYWORD]",
                "fanampiana momba ny fiteny / language help, or on one keyword", "help", 1),
    CommandSpec(("\\d",), "[NAME]",
                "tsanganana sy efitra / columns and domains of table or view NAME (all without)",
                "describe", 1),
    CommandSpec(("\\x",), "[on|off|auto]",
                "fampisehoana mivelatra / expanded rows (auto: when wider than the terminal)",
                "expanded", 1),
    CommandSpec(("\\pset",), "pager on|off",
                "pejy / page results taller than the terminal ($PAGER, less -S)", "pset", 2),
    CommandSpec(("\\timing",), "[on|off]", "fotoana / show each statement's time", "timing", 1),
    CommandSpec(("\\o",), "[FILE]",
                "vokatra ao anaty rakitra / results to FILE; \\o alone: back to the terminal",
                "output", 1),
    CommandSpec(("\\i",), "FILE",
                "rakitra / run the statements of FILE here, as -f does", "include", 1),
    CommandSpec(("\\lang",), "mg|en", "fiteny / language of error messages (en: English)",
                "lang", 1),
    CommandSpec(("miala", "\\q", "quit", "exit"), "", "hiala / quit (also Ctrl-D)", "quit"),
)
_BY_NAME = {name: spec for spec in COMMANDS for name in spec.names}
ON_OFF = {"on": True, "off": False}


@dataclass(frozen=True)
class ClientCommand:
    """A command the client handles itself: its kind and arguments."""

    kind: str
    arguments: tuple[str, ...] = ()

    @property
    def topic(self) -> str | None:
        """The keyword of `fanampiana KEYWORD` (None without one)."""
        return self.arguments[0] if self.arguments else None


# One line holding only blanks or a `--`/`//` comment, with its line break.
_COMMENT_LINE = re.compile(r"[ \t\r]*(?:(?:--|//)[^\n]*)?\n")


def leading_comment_lines(text: str) -> tuple[int, int]:
    """(lines, characters) at the start of `text` that hold only blanks or a comment.

    They run nothing (docs/CLIENT.md), so a command line after them is a command.
    """
    lines = position = 0
    while (match := _COMMENT_LINE.match(text, position)) is not None:
        lines += 1
        position = match.end()
    return lines, position


def client_command(text: str) -> ClientCommand | None:
    """The client command `text` is, if it is one (with or without `;`)."""
    stripped = text.strip().rstrip(";").strip()
    if not stripped or "\n" in stripped:
        return None
    first, _, rest = stripped.partition(" ")
    spec = _BY_NAME.get(first.lower())
    if spec is None:
        # A backslash starts no statement: an unknown command, said so here.
        return ClientCommand("unknown", (first, *rest.split())) if first.startswith("\\") \
            else None
    rest = rest.strip()
    if spec.kind in ("output", "include"):   # a file name may hold blanks
        arguments: tuple[str, ...] = (rest,) if rest else ()
    else:
        arguments = tuple(rest.split())
    if not first.startswith("\\") and len(arguments) > spec.max_arguments:
        return None   # `miala be`: a statement (a mistyped one), not the command
    return ClientCommand(spec.kind, arguments)


def command_list() -> str:
    """The `\\?` text: every client command with its arguments and help."""
    rows = [(", ".join(spec.names) + (" " + spec.arguments if spec.arguments else ""), spec.help)
            for spec in COMMANDS]
    width = max(len(usage) for usage, _ in rows)
    rows.append(("Ctrl-C", "hanafoana / cancel the input or the running statement"))
    lines = ["Baiko ao amin'ny mpanjifa / client commands (';' optional after a \\ command)"]
    lines += [f"  {usage.ljust(width)}  {help_text}" for usage, help_text in rows]
    return "\n".join(lines)


def describe_statement(command: ClientCommand) -> str:
    """The statement `\\d [NAME]` stands for."""
    if command.arguments:
        return f"asehoy ny tsanganana ao@ {command.arguments[0]}"
    return "asehoy ny tsanganana"


class CommandError(NodeError):
    """A client command used wrongly (its text says how to use it)."""


def apply(command: ClientCommand, display: Display) -> str | None:
    """Carry out a settings command on `display`; the line to show (if any). Raises CommandError."""
    kind, arguments = command.kind, command.arguments
    settings = display.settings
    if kind == "expanded":
        mode = arguments[0].lower() if arguments else ("off" if settings.expanded == "on" else "on")
        if mode not in EXPANDED_MODES:
            raise CommandError("\\x [on|off|auto]")
        settings.expanded = mode
        return f"Fampisehoana mivelatra / expanded display: {mode}"
    if kind == "pset":
        if len(arguments) != 2 or arguments[0] != "pager" or arguments[1].lower() not in ON_OFF:
            raise CommandError("\\pset pager on|off")
        settings.pager = ON_OFF[arguments[1].lower()]
        return f"Pejy / pager: {arguments[1].lower()}"
    if kind == "timing":
        setting = arguments[0].lower() if arguments else ("off" if settings.timing else "on")
        if setting not in ON_OFF:
            raise CommandError("\\timing [on|off]")
        settings.timing = ON_OFF[setting]
        return f"Fotoana / timing: {setting}"
    if kind == "output":
        path = arguments[0] if arguments else None
        try:
            display.output_to(path)
        except OSError as error:
            raise CommandError(f"\\o {path}: {error.strerror or error}") from None
        return None   # as psql: nothing is written to the new destination
    if kind == "lang":
        if len(arguments) != 1:
            raise CommandError("\\lang mg|en")
        try:
            display.set_lang(arguments[0].lower())
        except LanguageUnavailable as problem:
            raise CommandError(str(problem)) from None
        return f"Fiteny / language: {arguments[0].lower()}"
    raise CommandError(f"Baiko tsy fantatra / unknown client command {arguments[0]}: "
                       f"\\? lists them{_psql_equivalent(arguments)}")


# psql's listing and connecting commands, which a student types out of habit: the
# statement of the language that does the same (`\\c DB` takes the database's name).
PSQL_COMMANDS = {"\\dt": "asehoy ny tabilao;", "\\dv": "asehoy ny jery;",
                 "\\dd": "asehoy ny efitra;", "\\l": "asehoy ny tahiry;",
                 "\\du": "asehoy ny mpampiasa;", "\\c": "ampiasao {};", "\\connect": "ampiasao {};"}


def _psql_equivalent(arguments: tuple[str, ...]) -> str:
    """` ; amin'ny Tahiry / in Tahiry: STATEMENT` for a psql command, else ""."""
    statement = PSQL_COMMANDS.get(arguments[0].lower()) if arguments else None
    if statement is None:
        return ""
    database = arguments[1] if len(arguments) > 1 else "TAHIRY"
    return f" ; amin'ny Tahiry / in Tahiry: {statement.format(database)}"
