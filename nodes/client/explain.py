"""Errors shown so they teach: a caret under the position, English on request.

The wire text of an error is the engine's (docs/LANGUAGE.md) and is never
changed; what the client prints of it may be: its position made the
script's (nodes/client/positions.py), the offending line drawn with a `^`
under the column as PostgreSQL does, and with `--lang en` / `\\lang en`
the sentence translated by the engine's message catalogue
(`engine.language.messages.translate(text, lang)`, which returns the text
unchanged when it does not know it).
"""

from __future__ import annotations

from collections.abc import Callable

from engine.evaluation.render import display_width
from engine.evaluation.values import visible_text
from nodes.client.positions import ScriptPlace
from nodes.errors import NodeError

LANGUAGES = ("mg", "en")


# Of a long line, the characters shown on each side of the caret (psql cuts likewise).
CARET_CONTEXT = 60


def caret_lines(place: ScriptPlace, english: bool = False) -> list[str]:
    """The statement line at fault and a caret under the column (nothing without a position).

    A long line is cut to CARET_CONTEXT characters around the column, `...` marking the cuts.
    """
    if not place.exact or place.text is None:
        return []
    label = f"{'LINE' if english else 'andalana'} {place.line}: "
    text = place.text.replace("\t", " ")
    at = max(place.text_column - 1, 0)
    # (Controls made visible on each side: the caret stays under its character.)
    before, after = visible_text(text[:at]), visible_text(text[at:])
    if len(before) > CARET_CONTEXT:
        before = "..." + before[-CARET_CONTEXT:]
    if len(after) > CARET_CONTEXT:
        after = after[:CARET_CONTEXT] + "..."
    return [label + before + after, " " * (display_width(label) + display_width(before)) + "^"]


class LanguageUnavailable(NodeError):
    """The engine has no message catalogue to translate with."""


def translator(lang: str) -> Callable[[str], str] | None:
    """A function translating an error text into `lang` (None for Malagasy, the wire's own).

    Raises LanguageUnavailable when `lang` is unknown or the engine has no
    catalogue (engine/language/messages.py).
    """
    if lang not in LANGUAGES:
        raise LanguageUnavailable(f"unknown language {lang!r}: choose one of {', '.join(LANGUAGES)}")
    if lang == "mg":
        return None
    try:
        from engine.language.messages import translate
    except ImportError as missing:
        raise LanguageUnavailable(
            "English messages need the engine's catalogue (engine.language.messages), "
            f"which this version does not have ({missing})") from None
    return lambda text: translate(text, lang)


def note_translator(lang: str) -> Callable[[str], str] | None:
    """A function putting the note a success message may end with (a comparison with
    `null`) into `lang`, the message's beginning kept (None for Malagasy).

    Called once `translator(lang)` succeeded: the catalogue is there.
    """
    if lang == "mg":
        return None
    from engine.language.messages import translate_note
    return lambda text: translate_note(text, lang)
