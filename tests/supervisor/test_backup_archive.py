"""supervisor/backup_archive.py: the manifest, and an archive checked whole before it is trusted.

Every way a file can fail to be one of our backups (truncated, a byte
changed, not gzip, another tar, names that would land outside a data
directory, links, a manifest that lies or comes from a newer format) gets
one sentence and nothing written.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import orjson
import pytest

from engine.storage.object_format import sealed
from supervisor.backup_archive import (
    DATA_PREFIX,
    MANIFEST_NAME,
    ArchivedObject,
    ArchiveWriter,
    BadArchive,
    Manifest,
    check_archive,
    extract_archive,
)
from tests.objectkit import document, entry_lines

TABLE = "school/tables/t.json"
JOURNAL = "school/tables/t.journal"


def _snapshot(rel: str, change: int, rows=None) -> bytes:
    return sealed(orjson.dumps(document(rel, change, rows=rows, format=2)))


def _files() -> dict[str, bytes]:
    return {
        "school/database.json": _snapshot("school/database.json", 1),
        TABLE: _snapshot(TABLE, 2, rows=[[1]]),
        JOURNAL: entry_lines(3, [[["append", [[2]]]], [["append", [[3]]]]]),
        ".tahiry.format": b'{"format": 2}\n',
    }


def _write(path, files=None, **manifest_changes) -> Manifest:
    files = _files() if files is None else files
    writer = ArchiveWriter(path)
    for name, data in files.items():
        writer.add(name, data)
    objects = [ArchivedObject("school/database.json", 1, "m1"), ArchivedObject(TABLE, 4, "m1")]
    manifest = Manifest(cluster="/srv/topology.yaml", server="m1", taken="2026-12-05T10:00:00",
                        lock_wait_ms=0.1, paused_ms=0.5, servers=["m1", "m2"], objects=objects,
                        files=writer.files)
    for key, value in manifest_changes.items():
        object.__setattr__(manifest, key, value)
    writer.finish(manifest)
    return manifest


def _raw_archive(path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)


def _member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
            link: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


def _manifest_for(files: dict[str, bytes], objects: list[dict]) -> bytes:
    return json.dumps({
        "kind": "tahiry-backup", "version": 1, "cluster": "c", "server": "m1",
        "taken": "t", "lock_wait_ms": 0, "paused_ms": 0, "servers": ["m1"], "objects": objects,
        "files": [{"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                  for name, data in files.items()]}).encode()


def test_a_written_archive_checks_and_extracts_whole(tmp_path):
    manifest = _write(tmp_path / "b.tar.gz")
    checked = check_archive(tmp_path / "b.tar.gz")
    assert checked.manifest == manifest
    assert checked.order == ["school/database.json", TABLE, JOURNAL, ".tahiry.format"]
    into = tmp_path / "into"
    into.mkdir()
    extract_archive(tmp_path / "b.tar.gz", into)
    for name, data in _files().items():
        assert (into / name).read_bytes() == data
    assert not list(tmp_path.glob(".b.tar.gz.*.tmp")), "no temp file left"
    assert (tmp_path / "b.tar.gz").stat().st_mode & 0o777 == 0o600, "account hashes inside"


def test_the_writer_never_replaces_a_file(tmp_path):
    target = tmp_path / "b.tar.gz"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        _write(target)
    assert target.read_bytes() == b"precious"
    assert not list(tmp_path.glob(".b.tar.gz.*.tmp"))


@pytest.mark.parametrize("cut", [10, 200, -30, -1])
def test_a_truncated_archive_is_refused(tmp_path, cut):
    _write(tmp_path / "b.tar.gz")
    data = (tmp_path / "b.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[:cut])
    with pytest.raises(BadArchive, match="truncated|not a Tahiry backup|no manifest"):
        check_archive(tmp_path / "cut.tar.gz")


def test_a_changed_byte_is_found(tmp_path):
    # The same archive made again with one row's digit changed and the old manifest: the
    # member reads fine, its SHA-256 does not.
    files = _files()
    manifest = _write(tmp_path / "good.tar.gz", files)
    changed = dict(files)
    changed[JOURNAL] = files[JOURNAL].replace(b"[[2]]", b"[[5]]")
    with tarfile.open(tmp_path / "bad.tar.gz", "w:gz") as archive:
        for name, data in changed.items():
            info = tarfile.TarInfo(DATA_PREFIX + name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        body = manifest.to_bytes()
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size = len(body)
        archive.addfile(info, io.BytesIO(body))
    with pytest.raises(BadArchive, match="not a valid copy|does not match its manifest"):
        check_archive(tmp_path / "bad.tar.gz")


def test_a_flipped_byte_in_the_compressed_stream_is_found(tmp_path):
    _write(tmp_path / "b.tar.gz")
    data = bytearray((tmp_path / "b.tar.gz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "flip.tar.gz").write_bytes(bytes(data))
    with pytest.raises(BadArchive):
        check_archive(tmp_path / "flip.tar.gz")


def test_foreign_files_are_refused_in_one_sentence(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BadArchive, match="not a Tahiry backup"):
        check_archive(tmp_path / "notes.txt")
    (tmp_path / "plain.gz").write_bytes(gzip.compress(b"hello"))
    with pytest.raises(BadArchive, match="not a Tahiry backup"):
        check_archive(tmp_path / "plain.gz")
    _raw_archive(tmp_path / "other.tar.gz", [_member("src/main.c", b"int main;")])
    with pytest.raises(BadArchive, match="outside"):
        check_archive(tmp_path / "other.tar.gz")
    with pytest.raises(BadArchive, match="no such file"):
        check_archive(tmp_path / "missing.tar.gz")
    with pytest.raises(BadArchive, match="folder"):
        check_archive(tmp_path)


@pytest.mark.parametrize("member", [
    _member("/etc/passwd", b"x"),
    _member(DATA_PREFIX + "../../evil.json", b"x"),
    _member(DATA_PREFIX + "school/../../evil/database.json", b"x"),
    _member(DATA_PREFIX + ".tahiry.owner", b"x"),
    _member(DATA_PREFIX + "school/tables/.t.json.abc.tmp", b"x"),
    _member(DATA_PREFIX + "school/database.json", kind=tarfile.SYMTYPE, link="/etc/passwd"),
    _member(DATA_PREFIX + "school/database.json", kind=tarfile.LNKTYPE, link="/etc/passwd"),
    _member(DATA_PREFIX + "school/database.json", kind=tarfile.CHRTYPE),
    _member(DATA_PREFIX + "school", kind=tarfile.DIRTYPE),
])
def test_names_outside_a_data_directory_and_links_are_refused(tmp_path, member):
    _raw_archive(tmp_path / "evil.tar.gz", [member])
    with pytest.raises(BadArchive) as refused:
        check_archive(tmp_path / "evil.tar.gz")
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "evil.json").exists()


def test_a_manifest_of_another_version_or_kind_is_refused(tmp_path):
    _write(tmp_path / "v9.tar.gz", version=9)
    with pytest.raises(BadArchive, match="version 9"):
        check_archive(tmp_path / "v9.tar.gz")
    _write(tmp_path / "k.tar.gz", kind="other")
    with pytest.raises(BadArchive, match="not a Tahiry backup"):
        check_archive(tmp_path / "k.tar.gz")


def test_a_manifest_that_lies_is_refused(tmp_path):
    files = {"school/database.json": _snapshot("school/database.json", 1)}
    members = [_member(DATA_PREFIX + name, data) for name, data in files.items()]
    # The version it gives is not the copy's.
    lying = _manifest_for(files, [{"rel": "school/database.json", "version": 5, "source": "m1"}])
    _raw_archive(tmp_path / "a.tar.gz", [*members, _member(MANIFEST_NAME, lying)])
    with pytest.raises(BadArchive, match="version 1, its manifest says 5"):
        check_archive(tmp_path / "a.tar.gz")
    # A file it does not list.
    extra = {**files, "other/database.json": _snapshot("other/database.json", 1)}
    listed = _manifest_for(files, [{"rel": "school/database.json", "version": 1, "source": "m1"}])
    _raw_archive(tmp_path / "b.tar.gz", [*(_member(DATA_PREFIX + n, d) for n, d in extra.items()),
                                         _member(MANIFEST_NAME, listed)])
    with pytest.raises(BadArchive, match="does not list"):
        check_archive(tmp_path / "b.tar.gz")
    # A file it lists that is missing.
    _raw_archive(tmp_path / "c.tar.gz", [_member(MANIFEST_NAME, listed)])
    with pytest.raises(BadArchive, match="not in the archive"):
        check_archive(tmp_path / "c.tar.gz")
    # Files after the manifest (two archives concatenated, say).
    _raw_archive(tmp_path / "d.tar.gz", [*members, _member(MANIFEST_NAME, listed), *members])
    with pytest.raises(BadArchive, match="after its manifest"):
        check_archive(tmp_path / "d.tar.gz")


def test_a_journal_that_does_not_chain_is_refused(tmp_path):
    files = _files()
    files[JOURNAL] = entry_lines(5, [[["append", [[2]]]]])   # versions 3 and 4 missing: a gap
    with pytest.raises(BadArchive, match="not a valid copy"):
        _write(tmp_path / "gap.tar.gz", files)
        check_archive(tmp_path / "gap.tar.gz")


def test_extracting_a_bad_archive_writes_only_into_the_given_folder(tmp_path):
    _raw_archive(tmp_path / "evil.tar.gz", [_member(DATA_PREFIX + "../../evil.json", b"x")])
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(BadArchive):
        extract_archive(tmp_path / "evil.tar.gz", into)
    assert list(into.iterdir()) == []
    assert not (tmp_path / "evil.json").exists()


def _manifest_with(**fields) -> bytes:
    found = json.loads(_manifest_for({}, []))
    found.update(fields)
    return json.dumps(found).encode()


@pytest.mark.parametrize("manifest", [
    b"[" * 100_000,                                                    # nested past any limit
    _manifest_with(files=json.loads("[" * 50 + "]" * 50)),
    _manifest_with(servers=5),
    _manifest_with(servers=[["m1"]]),
    _manifest_with(objects=[{"rel": ["school", "database.json"], "version": 1, "source": "m1"}]),
    _manifest_with(objects=[{"rel": 5, "version": 1, "source": "m1"}]),
    _manifest_with(objects=[{"rel": "school/database.json", "version": 1, "source": None}]),
    _manifest_with(files=[{"path": ["school"], "size": 1, "sha256": "0" * 64}]),
    _manifest_with(lock_wait_ms="soon", paused_ms=[]),
], ids=["deep", "deep-files", "servers-int", "servers-nested", "rel-list", "rel-int",
        "source-null", "path-list", "times-not-numbers"])
def test_a_manifest_of_the_wrong_form_is_refused_in_one_sentence(tmp_path, manifest):
    """A hostile manifest (nested JSON, a list or number where a name goes): one sentence,
    never a RecursionError, TypeError or AttributeError out of the check."""
    _raw_archive(tmp_path / "evil.tar.gz", [_member(MANIFEST_NAME, manifest)])
    with pytest.raises(BadArchive) as refused:
        check_archive(tmp_path / "evil.tar.gz")
    assert "\n" not in str(refused.value) and "manifest" in str(refused.value)
