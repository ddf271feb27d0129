"""A backup archive: its manifest, writing one, and checking one whole before it is trusted.

`./tahiry backup` writes one gzip'ed tar file (supervisor/backup.py) and
`./tahiry restore` reads it (supervisor/restore.py); this module is the
format both sides share, so "is this a backup we can restore?" has one
answer:

    tahiry-backup/data/<db>/database.json          the object files of a data directory,
    tahiry-backup/data/<db>/tables/<t>.json        each table's snapshot followed by its
    tahiry-backup/data/<db>/tables/<t>.journal     journal (when it has one), in that order
    tahiry-backup/data/@tahiry/accounts/<a>.json
    tahiry-backup/data/.tahiry.format              the directory's format marker
    tahiry-backup/manifest.json                    last: written once every file is in

The manifest (`Manifest`) says what the archive is (`kind`, `version`), where
and when it was taken (cluster, server, UTC time), the point in time (how
long writes waited and were paused, every object at its version and the
server whose copy it is) and each file's size and SHA-256.

`check_archive(path)` reads the whole archive once, as a stream, and
raises `BadArchive` (one sentence) unless: it is a gzip'ed tar whose every
member is a regular file under `tahiry-backup/` with a name a data
directory may hold (no absolute path, no `..`, no symlink or hard link or
device: `object_format.object_relpath` decides, as for replication), no
bigger than this machine can check in memory (`member_size_limit`, from its
header, before it is read), the manifest is of a known version, each file is listed once with its size
and checksum, nothing is missing or extra, and every object is a valid
copy at its listed version (`object_state.check_copy`: the snapshot's
whole-document check, every journal line chained and fitting). Nothing is
written while checking; `extract_archive` writes the files into an empty
folder, checking them again as it goes (the file may have changed since).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import resource
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from engine.storage.atomic_files import fsync_folder, temp_path_for, unlink_quietly, write_all
from engine.storage.maintenance import FORMAT_MARKER
from engine.storage.object_format import InvalidDocument, object_relpath
from engine.storage.object_state import check_copy, journal_rel, object_of_journal

from .errors import SupervisorError

ARCHIVE_KIND = "tahiry-backup"
ARCHIVE_VERSION = 1
ROOT = "tahiry-backup"
MANIFEST_NAME = f"{ROOT}/manifest.json"
DATA_PREFIX = f"{ROOT}/data/"
# Top-level files of a data directory that are data (the rest are runtime: locks,
# the owner and cluster records, .corrupt/, .diverged/).
DATA_MARKERS = (FORMAT_MARKER,)
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
READ_CHUNK = 1024 * 1024
# What a file that is no gzip'ed tar, or a damaged one, raises while read (a truncated
# one raises EOFError, reported apart).
DAMAGED = (tarfile.TarError, gzip.BadGzipFile, zlib.error)


def member_size_limit() -> int:
    """The largest file an archive may hold here: a quarter of the memory this process may
    use (the machine's, or its address-space limit when lower). A file is read whole and
    parsed to be checked (a few times its size), and a server holds a whole table in
    memory anyway: a bigger one could not be served here. Checked against each member's
    header before it is read, so that a crafted archive (a few MB of gzip'ed zeros a header
    calls a huge table) is refused instead of filling the memory."""
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        memory = min(memory, soft)
    return memory // 4


class BadArchive(SupervisorError):
    """The file is not a whole, valid Tahiry backup (one sentence saying why)."""


@dataclass(frozen=True)
class ArchivedFile:
    """One file of the data directory: its path there (`db/tables/t.json`), size and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ArchivedObject:
    """One object at the point: its snapshot's path, its version, whose copy it is."""

    rel: str
    version: int
    source: str


@dataclass(frozen=True)
class Manifest:
    cluster: str                 # the topology file of the cluster it was taken from
    server: str                  # the server the point was taken on
    taken: str                   # UTC, ISO 8601: when the point was taken
    lock_wait_ms: float          # how long taking the commit locks took
    paused_ms: float             # how long writes were held off (the locks held)
    servers: list[str]           # every directory locked for the point
    objects: list[ArchivedObject]
    files: list[ArchivedFile]
    kind: str = ARCHIVE_KIND
    version: int = ARCHIVE_VERSION

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """The manifest in `data`, checked; BadArchive naming what is wrong."""
        try:
            found = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):   # (nested past the parser)
            raise BadArchive("its manifest is not JSON") from None
        if not isinstance(found, dict) or found.get("kind") != ARCHIVE_KIND:
            raise BadArchive("it is not a Tahiry backup (its manifest is of another kind)")
        if found.get("version") != ARCHIVE_VERSION:
            raise BadArchive(f"it is a Tahiry backup of format version {found.get('version')!r}; "
                             f"this Tahiry reads version {ARCHIVE_VERSION}")
        try:
            files = [ArchivedFile(**entry) for entry in found["files"]]
            objects = [ArchivedObject(**entry) for entry in found["objects"]]
            manifest = cls(cluster=found["cluster"], server=found["server"],
                           taken=found["taken"], lock_wait_ms=found["lock_wait_ms"],
                           paused_ms=found["paused_ms"], servers=found["servers"],
                           objects=objects, files=files)
        except (KeyError, TypeError):
            raise BadArchive("its manifest lacks a field or has one of the wrong form") from None
        manifest._check()
        return manifest

    def _check(self) -> None:
        self._check_form()
        paths = [entry.path for entry in self.files]
        if len(set(paths)) != len(paths):
            raise BadArchive("its manifest lists a file twice")
        for entry in self.files:
            data_path_problem(entry.path)
            if type(entry.size) is not int or entry.size < 0 or not _is_sha256(entry.sha256):
                raise BadArchive(f"its manifest gives {entry.path!r} a wrong size or checksum")
        rels = [entry.rel for entry in self.objects]
        if len(set(rels)) != len(rels):
            raise BadArchive("its manifest lists an object twice")
        listed = set(paths)
        for item in self.objects:
            if object_relpath(item.rel.split("/")) != item.rel or item.rel not in listed:
                raise BadArchive(f"its manifest lists object {item.rel!r} without its file")
            if type(item.version) is not int or item.version < 1:
                raise BadArchive(f"its manifest gives {item.rel!r} a wrong version")
        owned = set(rels) | {journal_rel(rel) for rel in rels} | set(DATA_MARKERS)
        if extra := sorted(listed - owned):
            raise BadArchive(f"its manifest lists {extra[0]!r}, which belongs to no object")

    def _check_form(self) -> None:
        """Every field of the type it is used as (the JSON is anyone's: a list where a name
        goes would otherwise fail the checks below with a TypeError, not one sentence)."""
        names = [self.cluster, self.server, self.taken]
        numbers = [self.lock_wait_ms, self.paused_ms]
        if not isinstance(self.servers, list):
            raise BadArchive("its manifest has a field of the wrong form")
        names += self.servers
        names += [value for item in self.objects for value in (item.rel, item.source)]
        names += [entry.path for entry in self.files]
        if not all(isinstance(value, str) for value in names) or not all(
                isinstance(value, int | float) and not isinstance(value, bool)
                for value in numbers):
            raise BadArchive("its manifest has a field of the wrong form")

    def file(self, path: str) -> ArchivedFile:
        return next(entry for entry in self.files if entry.path == path)


def _is_sha256(text: object) -> bool:
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def data_path_problem(path: object) -> None:
    """BadArchive unless `path` is a file a data directory holds as data: an object file, a
    table's journal or a data marker; never absolute, never `..`, never hidden elsewhere."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise BadArchive("it holds a file without a usable name")
    parts = path.split("/")
    if path in DATA_MARKERS or object_relpath(parts) == path:
        return
    table = object_of_journal(parts)
    if table is not None and object_relpath(table) == "/".join(table):
        return
    raise BadArchive(f"it holds {path!r}, which is no file of a Tahiry data directory "
                     f"(an absolute path, '..', or another name)")


# --------------------------------------------------------------------------
# writing


class ArchiveWriter:
    """Writes an archive to a temp file beside `target`; `finish` puts it in place.

    The target is never replaced: `finish` hard-links the finished temp file
    to it (refused if something appeared there meanwhile) and removes the
    temp file; `abort` (or any failure) leaves nothing behind.
    """

    def __init__(self, target: Path, temp: Path | None = None):
        self.target = target
        self.temp = temp if temp is not None else temp_path_for(target)
        # 0600: it holds every table and every account's password hash (docs/SECURITY.md).
        self._file: IO[bytes] = os.fdopen(
            os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
        try:
            self._tar = tarfile.open(fileobj=self._file, mode="w:gz", compresslevel=6)
        except BaseException:
            self.abort()
            raise
        self.files: list[ArchivedFile] = []

    def add(self, path: str, data: bytes) -> ArchivedFile:
        data_path_problem(path)
        entry = ArchivedFile(path, len(data), hashlib.sha256(data).hexdigest())
        self._add_member(DATA_PREFIX + path, data)
        self.files.append(entry)
        return entry

    def _add_member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o600
        info.type = tarfile.REGTYPE
        self._tar.addfile(info, _BytesReader(data))

    def finish(self, manifest: Manifest) -> None:
        try:
            self._add_member(MANIFEST_NAME, manifest.to_bytes())
            self._tar.close()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.link(self.temp, self.target)   # never over a file that appeared meanwhile
        except BaseException:
            self.abort()
            raise
        unlink_quietly(self.temp)
        try:
            fsync_folder(self.target.parent)
        except BaseException:
            unlink_quietly(self.target)
            raise

    def abort(self) -> None:
        for closing in (getattr(self, "_tar", None), self._file):
            try:
                if closing is not None:
                    closing.close()
            except (OSError, ValueError, tarfile.TarError):
                pass
        unlink_quietly(self.temp)


class _BytesReader:
    """The file object tarfile reads a member's bytes from (no copy of them)."""

    def __init__(self, data: bytes):
        self._view = memoryview(data)
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else self._position + size
        chunk = self._view[self._position:end]
        self._position += len(chunk)
        return bytes(chunk)


# --------------------------------------------------------------------------
# checking


@dataclass
class _Pending:
    """A table's snapshot read, waiting for its journal (the next member) before it is checked."""

    rel: str
    snapshot: bytes


@dataclass
class CheckedArchive:
    """What `check_archive` found valid: the manifest, and the files in archive order."""

    manifest: Manifest
    order: list[str] = field(default_factory=list)


def check_archive(path: Path, into: Path | None = None) -> CheckedArchive:
    """Read the archive at `path` whole and check it (module docstring); BadArchive if not valid.

    With `into` (an empty folder), every file is also written there under
    its data directory path, durably; the caller removes `into` on failure.
    """
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            return _check_members(archive, into)
    except FileNotFoundError:
        raise BadArchive(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BadArchive(f"{path} is a folder, not a backup file") from None
    except PermissionError:
        raise BadArchive(f"{path} cannot be read by this user") from None
    except DAMAGED:
        raise BadArchive(f"{path} is not a Tahiry backup (not a gzip'ed tar archive, or "
                         f"truncated or corrupt)") from None
    except EOFError:
        raise BadArchive(f"{path} is truncated (it ends before its last file)") from None
    except MemoryError:   # (the size limit makes it unexpected: a machine short of memory)
        raise BadArchive(f"{path} holds a file too big to check in this machine's "
                         f"memory") from None
    except BadArchive as error:
        raise BadArchive(f"{path}: {error}") from None


def _check_members(archive: tarfile.TarFile, into: Path | None) -> CheckedArchive:
    contents: dict[str, ArchivedFile] = {}
    order: list[str] = []
    manifest: Manifest | None = None
    pending: _Pending | None = None
    objects_seen: list[tuple[str, int]] = []
    # A copy that is not valid is reported once the manifest was read: an archive of
    # another format version says so, rather than what this version finds wrong in it.
    invalid: list[str] = []
    size_limit = member_size_limit()

    def checked_version(rel: str, snapshot: bytes, lines: bytes) -> int:
        try:
            return check_copy(rel, snapshot, lines).version
        except InvalidDocument as error:
            invalid.append(f"{rel!r} is not a valid copy ({error.reason})")
            return 0
    for member in _members(archive):
        if manifest is not None:
            raise BadArchive("it has files after its manifest")
        if member.name == MANIFEST_NAME:
            if not member.isreg() or member.size > MAX_MANIFEST_BYTES:
                raise BadArchive("its manifest is not a regular file of a sane size")
            manifest = Manifest.from_bytes(_read_member(archive, member))
            continue
        if not member.name.startswith(DATA_PREFIX):
            raise BadArchive(f"it holds {member.name!r}, outside {DATA_PREFIX}")
        rel = member.name[len(DATA_PREFIX):]
        data_path_problem(rel)
        if not member.isreg():
            raise BadArchive(f"it holds {rel!r} as a link or special file, not a regular file")
        if rel in contents:
            raise BadArchive(f"it holds {rel!r} twice")
        if member.size > size_limit:
            raise BadArchive(f"it holds {rel!r} of {member.size} bytes, more than this "
                             f"machine can check in memory (at most {size_limit} bytes a "
                             f"file)")
        data = _read_member(archive, member)
        contents[rel] = ArchivedFile(rel, len(data), hashlib.sha256(data).hexdigest())
        order.append(rel)
        if into is not None:
            _write_file(into, rel, data)
        # A table's journal follows its snapshot: the copy is checked once both are read.
        table = object_of_journal(rel.split("/"))
        if table is not None:
            if pending is None or pending.rel != "/".join(table):
                raise BadArchive(f"it holds the journal {rel!r} without its table just before it")
            objects_seen.append((pending.rel, checked_version(pending.rel, pending.snapshot, data)))
            pending = None
            continue
        if pending is not None:
            objects_seen.append((pending.rel, checked_version(pending.rel, pending.snapshot, b"")))
            pending = None
        if rel not in DATA_MARKERS:
            pending = _Pending(rel, data)
    if pending is not None:
        objects_seen.append((pending.rel, checked_version(pending.rel, pending.snapshot, b"")))
    # The tar's end is not the file's: read the gzip stream to its end too, so that its
    # checksum and length (its last 8 bytes) are checked, and a cut there is found.
    stream = archive.fileobj
    while stream is not None and stream.read(READ_CHUNK):
        pass
    if manifest is None:
        raise BadArchive("it has no manifest (truncated, or not a Tahiry backup)")
    if invalid:
        raise BadArchive(invalid[0])
    listed = {entry.path: entry for entry in manifest.files}
    if missing := sorted(set(listed) - set(contents)):
        raise BadArchive(f"{missing[0]!r} is in its manifest but not in the archive")
    if extra := sorted(set(contents) - set(listed)):
        raise BadArchive(f"it holds {extra[0]!r}, which its manifest does not list")
    for rel, found in contents.items():
        if found != listed[rel]:
            raise BadArchive(f"{rel!r} does not match its manifest (size or SHA-256): corrupt")
    versions = {item.rel: item.version for item in manifest.objects}
    for rel, version in objects_seen:
        if versions.get(rel) != version:
            raise BadArchive(f"{rel!r} is at version {version}, its manifest says "
                             f"{versions.get(rel)}")
    if len(objects_seen) != len(versions):
        raise BadArchive("its manifest lists objects the archive does not hold")
    return CheckedArchive(manifest, order)


def _members(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while True:
        member = archive.next()
        if member is None:
            return
        yield member


def _read_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    source = archive.extractfile(member)
    if source is None:
        raise BadArchive(f"{member.name!r} cannot be read")
    chunks = []
    left = member.size
    while left > 0:
        chunk = source.read(min(READ_CHUNK, left))
        if not chunk:
            raise EOFError(member.name)
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write_file(into: Path, rel: str, data: bytes) -> None:
    """`data` at `into/rel`, durably, in folders made here (so no symlink is on the way)."""
    path = into / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        write_all(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def extract_archive(path: Path, into: Path) -> CheckedArchive:
    """The archive's files written into the empty folder `into` (checked again while
    written); BadArchive if anything does not hold. Folders are fsynced."""
    checked = check_archive(path, into)
    for folder, _, _ in os.walk(into):
        fsync_folder(folder)
    return checked
