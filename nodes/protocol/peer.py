"""The peer protocol, sans-IO: what one server asks another about its copies, and the answers.

Servers certify their commits against their peers and pull their newer
copies (docs/REPLICATION.md); across machines they ask each other over the
wire protocol, with admin requests that start `.peer` (answered only after
`.auth` on a node that requires the secret, as every request). Both ends
build and read them here, so the format lives in one place:

    .peer hello VERSION;               {"protocol": 2, "node": ID}; another VERSION: an error
    .peer versions REL ...;            {REL: null | {"change", "snapshot_change", "dropped",
                                                     "size"} | {"error": TEXT}}
    .peer digest CONTENT REL ...;      {REL: null | {"change", "line": HEX | null, "snapshot": HEX,
                                                     "content": HEX | null} | {"error": TEXT}}:
                                       what says whether two copies at one version hold the
                                       same object (engine/storage/object_state.py
                                       `same_by_digest`); with CONTENT 1 also the digest of the
                                       materialized object (`content_digest`, costs the table)
    .peer names DB FOLDER;             {"names": [STEM, ...]}
    .peer names;                       {"rels": [REL, ...]}: every object of the directory
                                       (markers and tombstones included)
    .peer fetch REL BASE DROPPED;      {"shipment": PAYLOAD | null}: what brings a copy at
                                       version BASE ("-": none; DROPPED 1 for a tombstone)
                                       up to this server's version
    .peer fence SECONDS WAIT_MS;       {"held": bool}: this directory's write lock taken for
                                       the connection, as a lease of SECONDS at most (waiting
                                       up to WAIT_MS for it); dropped by `.peer release;`, at
                                       the lease's end, or when the connection goes
    .peer release;                     {"held": false}
    .peer check PAYLOAD;               {"violation": null | {"rel", "change"}}: the commit
                                       fence's question for files [[REL, CHANGE, DOC|null]]
                                       (DOC: a database marker or tombstone, which may be the
                                       very same broadcast write)
    .peer ship REL PAYLOAD;            {"result": "moved" | "current" | "replan",
                                        "version": N | null}: a shipment applied with the
                                       checks of engine/storage/object_copy.py
    .peer part PAYLOAD;                {"parts": N}: one chunk of a payload too big for one
                                       request; the request that follows gives `@` for it

REL is an object's path relative to a data directory (`db/tables/t.json`).
A PAYLOAD is bytes in base64 with the alphabet's `+` and `/` replaced by
`.` and `_`: no `;`, quote, `--` or `//` can appear in it, so it frames as
plain statement text. A shipment's bytes are one JSON header line (version,
base, and the lengths of the parts) followed by the snapshot, the journal
lines and the line at the base, back to back (`encode_shipment`).

Version 2 added `.peer digest` (the replicator compares equal versions
across machines with it, docs/REPLICATION.md): a server of version 1 could
not answer it, so the two refuse each other at hello rather than leave that
comparison silently undone.

An answer is a message response holding one JSON object; an error is an
ordinary error response (`Hadisoana : ...`), which `decode_answer` raises as
`PeerRefused`. Nothing here touches a socket.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import orjson

from engine.storage.object_copy import Shipment
from engine.storage.object_state import CopyDigest
from nodes.errors import NodeError
from nodes.protocol.wire import DEFAULT_MAX_REQUEST_BYTES, Response, encode_error, encode_message

PEER_PROTOCOL_VERSION = 2
PEER_WORD = ".peer"
PART_MARK = "@"            # the payload argument of a request whose payload came in parts
VERBS = ("hello", "versions", "digest", "names", "fetch", "fence", "release", "check", "ship", "part")
# Room for the verb and the other arguments beside a payload in one request.
REQUEST_OVERHEAD = 1024
# The most a payload may grow to in parts on one connection (a table's snapshot).
MAX_PAYLOAD_BYTES = 1 << 30
_ALTCHARS = b"._"


class PeerRefused(NodeError):
    """A peer answered a request with an error, or with something that is not an answer."""


# --------------------------------------------------------------------------
# payloads


def encode_payload(data: bytes) -> str:
    """`data` as request text (base64, `+/` written `._`)."""
    return base64.b64encode(data, altchars=_ALTCHARS).decode("ascii")


def decode_payload(text: str) -> bytes:
    """The bytes of a payload; ValueError with a sentence if it is not one."""
    try:
        return base64.b64decode(text.encode("ascii"), altchars=_ALTCHARS, validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("the payload is not base64 (with . and _)") from None


# --------------------------------------------------------------------------
# requests


@dataclass(frozen=True)
class PeerRequest:
    """One `.peer` request: its verb and its words after the verb."""

    verb: str
    args: tuple[str, ...]


def is_peer_request(text: str) -> bool:
    """Whether a request's text (no `;`) is a `.peer` request."""
    return text[:len(PEER_WORD)].lower() == PEER_WORD and (
        len(text) == len(PEER_WORD) or text[len(PEER_WORD)].isspace())


def request_bytes(verb: str, *args: str) -> bytes:
    """The wire bytes of `.peer VERB ARG ...;` (arguments are single words)."""
    if verb not in VERBS:
        raise ValueError(f"unknown peer request {verb!r}")
    for arg in args:
        if not arg or any(ch.isspace() or ch in ";'\"" for ch in arg) or "--" in arg or "//" in arg:
            raise ValueError(f"peer request argument {arg!r} cannot be sent as one word")
    return " ".join((PEER_WORD, verb, *args)).encode("utf-8") + b";"


def requests_with_payload(verb: str, args: tuple[str, ...], payload: bytes,
                          max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> list[bytes]:
    """The requests that send `.peer VERB ARGS PAYLOAD;`: one, or parts then the request with `@`."""
    text = encode_payload(payload)
    room = max(4, max_request_bytes - REQUEST_OVERHEAD)
    if len(text) <= room:
        return [request_bytes(verb, *args, text)]
    room -= room % 4   # each part decodes alone: whole base64 quanta
    parts = [request_bytes("part", text[start:start + room])
             for start in range(0, len(text), room)]
    return [*parts, request_bytes(verb, *args, PART_MARK)]


def parse_request(text: str) -> PeerRequest:
    """The `.peer` request of a request's text; ValueError with a sentence if malformed."""
    if not is_peer_request(text):
        raise ValueError("not a .peer request")
    words = text[len(PEER_WORD):].split()
    if not words:
        raise ValueError(f"`.peer` expects one of: {', '.join(VERBS)}")
    verb, args = words[0].lower(), tuple(words[1:])
    if verb == "names" and len(args) == 1:
        raise ValueError("`.peer names` takes no argument, or a database and a folder")
    if verb not in VERBS:
        raise ValueError(f"unknown peer request {words[0]!r} (expected one of: {', '.join(VERBS)})")
    expected = {"hello": (1, 2), "versions": (1, 10_000), "digest": (2, 10_001),
                "names": (0, 2), "fetch": (3, 3), "fence": (2, 2), "release": (0, 0),
                "check": (1, 1), "ship": (2, 2), "part": (1, 1)}[verb]
    if not expected[0] <= len(args) <= expected[1] or (verb == "names" and len(args) == 1):
        raise ValueError(f"`.peer {verb}` takes {expected[0]}"
                         f"{'' if expected[0] == expected[1] else ' or more'} arguments, "
                         f"not {len(args)}")
    return PeerRequest(verb, args)


def int_arg(text: str, what: str, minimum: int = 0) -> int:
    """A whole-number argument; ValueError naming it otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"{what} {value} is below {minimum}")
    return value


def hello_request(asker: str | None = None) -> bytes:
    """`.peer hello VERSION [ASKER]`: ASKER, the asking server's id (a replicator names
    none): a server certifies the commits only of the servers that are its peers."""
    return request_bytes("hello", str(PEER_PROTOCOL_VERSION), *([asker] if asker else []))


def hello_asker(request: PeerRequest) -> str | None:
    """The asking server's id a hello names (None: a replicator, or a peer that says none)."""
    return request.args[1] if len(request.args) > 1 else None


def versions_request(rels: list[str]) -> bytes:
    return request_bytes("versions", *rels)


def digest_request(rels: list[str], content: bool) -> bytes:
    """`.peer digest CONTENT REL ...;`: each copy's digests (CONTENT: its object's too)."""
    return request_bytes("digest", "1" if content else "0", *rels)


def digest_arguments(request: PeerRequest) -> tuple[bool, list[str]]:
    content, *rels = request.args
    if content not in ("0", "1"):
        raise ValueError(f"the content flag {content!r} is neither 0 nor 1")
    return content == "1", rels


@dataclass(frozen=True)
class RemoteDigest:
    """One copy's answer to `.peer digest` (`digest` None: no copy there)."""

    digest: CopyDigest | None
    content: bytes | None = None   # asked with CONTENT 1, and still at that version
    error: str | None = None       # the copy there does not read


def digest_entry(digest: CopyDigest | None, content: bytes | None) -> dict | None:
    """One object's entry in a digest answer."""
    if digest is None:
        return None
    return {"change": digest.version,
            "line": None if digest.line_digest is None else digest.line_digest.hex(),
            "snapshot": digest.snapshot_digest.hex(),
            "content": None if content is None else content.hex()}


def digest_of(entry: object) -> RemoteDigest:
    """An entry of a digest answer read back; PeerRefused if it is not one."""
    if entry is None:
        return RemoteDigest(None)
    if isinstance(entry, dict) and "error" in entry:
        return RemoteDigest(None, error=str(entry["error"]))
    try:
        if not isinstance(entry, dict):
            raise TypeError
        line, content = entry["line"], entry["content"]
        change = entry["change"]
        if not isinstance(change, int) or isinstance(change, bool):
            raise ValueError
        return RemoteDigest(CopyDigest(change, None if line is None else bytes.fromhex(line),
                                       bytes.fromhex(entry["snapshot"])),
                            None if content is None else bytes.fromhex(content))
    except (KeyError, TypeError, ValueError):
        raise PeerRefused(f"not a digest: {str(entry)[:120]!r}") from None


def names_request(database: str | None = None, folder: str | None = None) -> bytes:
    """`.peer names DB FOLDER;`, or `.peer names;` (every object path) without arguments."""
    if database is None or folder is None:
        return request_bytes("names")
    return request_bytes("names", database, folder)


def fetch_request(rel: str, base: int | None, dropped: bool) -> bytes:
    return request_bytes("fetch", rel, "-" if base is None else str(base), "1" if dropped else "0")


def fetch_arguments(request: PeerRequest) -> tuple[str, int | None, bool]:
    rel, base, dropped = request.args
    if dropped not in ("0", "1"):
        raise ValueError(f"the dropped flag {dropped!r} is neither 0 nor 1")
    return rel, None if base == "-" else int_arg(base, "version"), dropped == "1"


def fence_request(seconds: float, wait_ms: int) -> bytes:
    return request_bytes("fence", f"{seconds:g}", str(int(wait_ms)))


def fence_arguments(request: PeerRequest) -> tuple[float, int]:
    seconds_text, wait_text = request.args
    try:
        seconds = float(seconds_text)
    except ValueError:
        raise ValueError(f"lease {seconds_text!r} is not a number of seconds") from None
    if not 0 < seconds <= 600:
        raise ValueError(f"lease {seconds:g} s is not between 0 and 600 s")
    return seconds, int_arg(wait_text, "wait")


def release_request() -> bytes:
    return request_bytes("release")


def check_requests(files: list[tuple[str, int, bytes | None]],
                   max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> list[bytes]:
    """`.peer check`: files (rel, new change, the new document's bytes when it may be a
    broadcast write)."""
    body = orjson.dumps([[rel, change, encode_payload(document) if document is not None else None]
                         for rel, change, document in files])
    return requests_with_payload("check", (), body, max_request_bytes)


def check_arguments(payload: bytes) -> list[tuple[str, int, bytes | None]]:
    try:
        files = orjson.loads(payload)
        return [(str(rel), int(change), decode_payload(document) if document is not None else None)
                for rel, change, document in files]
    except (orjson.JSONDecodeError, TypeError, ValueError):
        raise ValueError("`.peer check` expects [[REL, CHANGE, DOCUMENT|null], ...]") from None


def ship_requests(rel: str, shipment: Shipment,
                  max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> list[bytes]:
    return requests_with_payload("ship", (rel,), encode_shipment(shipment), max_request_bytes)


class PartBuffer:
    """The parts of a payload received so far on one connection (`.peer part`)."""

    def __init__(self, limit: int = MAX_PAYLOAD_BYTES):
        self._parts: list[bytes] = []
        self._size = 0
        self._limit = limit

    def add(self, text: str) -> int:
        data = decode_payload(text)
        if self._size + len(data) > self._limit:
            self.clear()
            raise ValueError(f"a payload in parts may not exceed {self._limit} bytes")
        self._parts.append(data)
        self._size += len(data)
        return len(self._parts)

    def payload(self, text: str) -> bytes:
        """The payload a request gives: its own argument, or the parts (`@`), taken."""
        if text != PART_MARK:
            return decode_payload(text)
        data = b"".join(self._parts)
        self.clear()
        return data

    def clear(self) -> None:
        self._parts, self._size = [], 0


# --------------------------------------------------------------------------
# shipments


def encode_shipment(shipment: Shipment) -> bytes:
    """One header line of JSON, then the snapshot, the lines and the line at the base."""
    snapshot = shipment.snapshot
    at_base = shipment.line_at_base
    header = {"version": shipment.version, "base": shipment.base,
              "snapshot": None if snapshot is None else len(snapshot),
              "lines": len(shipment.lines),
              "line_at_base": None if at_base is None else len(at_base)}
    return orjson.dumps(header) + b"\n" + (snapshot or b"") + shipment.lines + (at_base or b"")


def decode_shipment(data: bytes) -> Shipment:
    """The shipment of `encode_shipment`'s bytes; ValueError with a sentence if malformed."""
    cut = data.find(b"\n")
    try:
        header = orjson.loads(data[:cut] if cut >= 0 else b"")
        version, base = header["version"], header["base"]
        sizes = [header["snapshot"], header["lines"], header["line_at_base"]]
        if not isinstance(version, int) or not (base is None or isinstance(base, int)) or not all(
                size is None or (isinstance(size, int) and size >= 0) for size in sizes) \
                or sizes[1] is None:
            raise ValueError
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise ValueError("not a shipment (bad header)") from None
    body = data[cut + 1:]
    if sum(size or 0 for size in sizes) != len(body):
        raise ValueError("not a shipment (its parts do not add up)")
    pieces: list[bytes | None] = []
    at = 0
    for size in sizes:
        pieces.append(None if size is None else body[at:at + size])
        at += size or 0
    snapshot, lines, at_base = pieces
    assert lines is not None
    if (base is None) != (snapshot is not None):
        raise ValueError("not a shipment (an install carries a snapshot, an append a base)")
    return Shipment(version, lines, base, snapshot, at_base)


# --------------------------------------------------------------------------
# answers


def encode_answer(value: dict) -> bytes:
    """A peer answer: one JSON object in a message response."""
    return encode_message(orjson.dumps(value).decode("utf-8"))


def encode_refusal(sentence: str) -> bytes:
    """A peer request refused: an ordinary error response."""
    return encode_error(sentence)


def decode_answer(response: Response) -> dict:
    """The JSON object of an answer; PeerRefused with the peer's sentence for an error."""
    if not response.ok:
        raise PeerRefused(response.message)
    try:
        value = orjson.loads(response.message)
    except orjson.JSONDecodeError:
        raise PeerRefused(f"not a peer answer: {response.message[:120]!r}") from None
    if not isinstance(value, dict):
        raise PeerRefused(f"not a peer answer: {response.message[:120]!r}")
    return value


def check_hello(answer: dict) -> str:
    """The peer's node id from its hello answer; PeerRefused if it speaks another version."""
    version = answer.get("protocol")
    if version != PEER_PROTOCOL_VERSION:
        raise PeerRefused(f"the peer speaks peer protocol {version!r}, this server "
                          f"{PEER_PROTOCOL_VERSION}: upgrade both to the same version")
    return str(answer.get("node", "?"))


def hello_problem(request: PeerRequest) -> str | None:
    """Why a hello cannot be accepted (another protocol version), or None."""
    try:
        version = int_arg(request.args[0], "protocol version")
    except ValueError as error:
        return str(error)
    if version != PEER_PROTOCOL_VERSION:
        return (f"peer protocol {version} is not spoken here (this server speaks "
                f"{PEER_PROTOCOL_VERSION}): upgrade both to the same version")
    return None


def shipment_answer(shipment: Shipment | None) -> dict:
    return {"shipment": None if shipment is None else encode_payload(encode_shipment(shipment))}


def shipment_of(answer: dict) -> Shipment | None:
    """The shipment of a fetch's answer; PeerRefused if malformed."""
    text = answer.get("shipment")
    if text is None:
        return None
    try:
        return decode_shipment(decode_payload(str(text)))
    except ValueError as error:
        raise PeerRefused(f"bad shipment from the peer: {error}") from None
