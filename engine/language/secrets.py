"""Passwords out of statement text: `redact_secrets(text)` for logs, histories and echoes.

The account statements (docs/LANGUAGE.md 2, "Accounts and rights") carry a
password after the word `tenimiafina`:

    manamboara mpampiasa NAME tenimiafina "PW" [mpitantana]
    ovay ny tenimiafina NAME "PW"

`redact_secrets` replaces each such password (a string literal in either
quote, closed or not, or a bare word where a literal was due) with
`"***"`, and leaves every other character alone. A text without the word
`tenimiafina` (in any case) is returned as it is after one scan; the word
inside a string or a comment is redacted after all, which costs nothing
but a few starred characters in a log. Import-free (no parser), so a
client or a node uses it without loading the engine.
"""

from __future__ import annotations

import re

REDACTED = '"***"'

_LOWER_WORD = "tenimiafina"
# A password: a string literal (the lexer's quoting: doubled quotes and
# backslash escapes; an unterminated one runs to the end), or else a bare
# token up to a space or `;`.
_PASSWORD = (r"""(?:'(?:[^'\\]|\\.|'')*(?:'|\Z)|"(?:[^"\\]|\\.|"")*(?:"|\Z)|[^\s;'"]+)""")
_SECRET = re.compile(
    r"(?P<lead>\bny\s+tenimiafina\s+[^\W\d]\w*\s+|\btenimiafina\s+)" + _PASSWORD,
    re.IGNORECASE | re.DOTALL)


def mentions_secret(text: str) -> bool:
    """Whether `text` may hold a password (the word `tenimiafina`, in any case).

    (`str.lower` and a plain search: many times faster than a case-blind
    regular expression over a bulk insert; the parser compares words lower-cased too.)
    """
    return _LOWER_WORD in text.lower()


def redact_secrets(text: str) -> str:
    """`text` with every password literal of an account statement replaced by `"***"`."""
    if _LOWER_WORD not in text.lower():
        return text
    return _SECRET.sub(lambda match: match.group("lead") + REDACTED, text)
