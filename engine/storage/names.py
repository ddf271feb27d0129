"""Names of databases and objects: which ones may become file names under the data directory.

A name is accepted only if it is an identifier of the language (a letter or
`_`, then letters, digits or `_`; Unicode letters allowed), at most
128 characters and 200 UTF-8 bytes. Anything that could leave the data
directory (empty, `.`, `..`, separators, NUL, absolute paths) is refused
with a clear `TahiryError` before any file is touched (docs/STORAGE.md).
"""

from __future__ import annotations

import os
import re

from engine.errors import TahiryError
from engine.vocabulary import OBJECT_KIND_WORDS, RIGHTS_KIND_WORDS

MAX_NAME_CHARS = 128
MAX_NAME_BYTES = 200  # leaves room for ".<name>.json.<random>.tmp" under 255 bytes
_IDENTIFIER_RE = re.compile(r"[^\W\d]\w*")


def is_identifier(name: str) -> bool:
    """Whether `name` has the shape of an identifier (listings skip other file names)."""
    return _IDENTIFIER_RE.fullmatch(name) is not None


def validate_name(name: object, kind: str = "object") -> str:
    """Return `name` if it is a safe identifier, else raise a clear TahiryError.

    Rejects anything that could escape the data directory or is not an
    identifier of the language: empty, `.`/`..`, separators, NUL, absolute
    paths, over-long names.
    """
    word = (OBJECT_KIND_WORDS.get(kind) or RIGHTS_KIND_WORDS.get(kind)
            or ("tsanganana" if kind == "column" else "anarana"))
    if not isinstance(name, str) or name == "":
        raise TahiryError(f"Anarana foana tsy azo ekena ho {word}")
    shown = name.replace("\0", "\\0")
    if "\0" in name or "/" in name or "\\" in name or name in (".", "..") or os.path.isabs(name):
        raise TahiryError(
            f"Ny anarana '{shown}' dia tsy azo ekena ho {word} : "
            f"tsy mahazo mivoaka ny lahatahiry data (/, \\, .., NUL)")
    if not _IDENTIFIER_RE.fullmatch(name):
        raise TahiryError(
            f"Ny anarana '{shown}' dia tsy azo ekena ho {word} : "
            f"litera na _ no manomboka azy, ary litera, isa na _ ihany no ao aminy")
    if len(name) > MAX_NAME_CHARS or len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise TahiryError(f"Lava loatra ny anarana '{name[:20]}...' ho {word} "
                          f"(max {MAX_NAME_CHARS} litera sy {MAX_NAME_BYTES} bytes UTF-8)")
    return name
