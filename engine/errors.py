"""The one error type the engine raises for anything a user did wrong.

Every user-facing failure (syntax, unknown name, domain violation, type
error, limits) is a `TahiryError` whose text is one clear sentence in the
DirkDB flavour (Malagasy with some French). `message` adds the wire prefix
`Hadisoana : `. Anything else escaping the engine is a bug.
"""

from __future__ import annotations

ERROR_PREFIX = "Hadisoana : "


class TahiryError(Exception):
    """A statement failed; `str(error)` is the sentence, without prefix."""

    def __init__(self, sentence: str):
        super().__init__(sentence)
        self.sentence = sentence

    @property
    def message(self) -> str:
        return ERROR_PREFIX + self.sentence


class TahirySyntaxError(TahiryError):
    """A statement could not be parsed; carries its 1-based line and column."""

    def __init__(self, sentence: str, line: int, column: int):
        super().__init__(sentence)
        self.line = line
        self.column = column
