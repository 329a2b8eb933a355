"""Checksum records: every file kept for later is checked against what was written.

Each stored clip or still and each media-cache entry (conformed clip, seam, card,
finished sequence, deliverable) has a record beside it, ``<name>.sum``: its size,
SHA-256 and mtime at write (plus, for conformed clips, what probing it found). The
record is written before the file is moved into place, so a file that is there has one.

Reading an entry back is a fast check: its size must be the recorded one, and while its
mtime is still the recorded one (``os.replace`` keeps it; any write changes it) the bytes
are trusted without hashing. Otherwise the file is hashed: the recorded bytes get their
record refreshed, anything else is discarded, with one warning naming the file and what
was wrong, so its maker rebuilds it (a stored clip is fetched again). So an unchanged
rerun hashes nothing; a file changed in place costs one hash. Bytes that rot on disk
without any write (size and mtime intact) pass the fast check; a stored clip is hashed in
full before it is conformed (``_encode._check_source``). See README, "Cache checks".
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = ["RECORD_SUFFIX", "FileRecord", "check", "discard", "problem", "read_record",
           "record_path", "sha256_file", "warn", "write_record"]

_log = logging.getLogger("reelflow.tasks.cache")
_CHUNK = 1 << 20

#: What a record's file name adds to the file it describes.
RECORD_SUFFIX = ".sum"


class FileRecord(BaseModel):
    """What a kept file was when it was written (or last verified)."""

    size: int
    sha256: str
    mtime_ns: int
    #: What the writer learnt about the file, e.g. a conformed clip's ClipInfo.
    info: dict[str, Any] | None = None


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def record_path(path: Path) -> Path:
    """Where the record of ``path`` lives: beside it, ``<name>.sum``."""
    return path.with_name(path.name + RECORD_SUFFIX)


def write_record(final: Path, written: Path | None = None, *, sha256: str | None = None,
                 info: dict[str, Any] | None = None) -> FileRecord:
    """Record ``written`` (default ``final``) as the content of ``final``; return the record.

    Call it with the temp file before ``os.replace(written, final)``: the rename keeps
    size and mtime, so the record matches the moment the file appears.
    """
    written = Path(written or final)
    stat = written.stat()
    record = FileRecord(size=stat.st_size, sha256=sha256 or sha256_file(written),
                        mtime_ns=stat.st_mtime_ns, info=info)
    target = record_path(Path(final))
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}")
    tmp.write_text(record.model_dump_json())
    os.replace(tmp, target)
    return record


def read_record(path: Path) -> FileRecord | None:
    """The record of ``path``, or None when it is missing or unreadable."""
    try:
        return FileRecord.model_validate_json(record_path(path).read_bytes())
    except (OSError, ValidationError, ValueError):
        return None


def problem(path: Path, *, sha256: str | None = None) -> str | None:
    """What is wrong with ``path`` against its record (or ``sha256``); None when it is good.

    Args:
        path: the kept file.
        sha256: the hash it must have, for content-addressed files; without one the
            record says (and a file without a record cannot be trusted).

    Returns:
        None, ``"missing"``, or a short reason such as "20000 bytes where 71447 were
        written" or "its SHA-256 is not the one written". A good file whose mtime moved
        (or that had no record) gets its record (re)written, so it is hashed only once.
    """
    try:
        stat = path.stat()
    except FileNotFoundError:
        return "missing"
    record = read_record(path)
    if record is not None and sha256 is not None and record.sha256 != sha256:
        record = None  # a record of other bytes says nothing about these
    if record is None and sha256 is None:
        return "no checksum record"
    if record is not None:
        if stat.st_size != record.size:
            return f"{stat.st_size} bytes where {record.size} were written"
        if stat.st_mtime_ns == record.mtime_ns:
            return None
    if sha256_file(path) != (sha256 or record.sha256):
        return "its SHA-256 is not the one written"
    write_record(path, sha256=sha256 or record.sha256, info=record.info if record else None)
    return None


def check(path: Path, what: str, *, sha256: str | None = None) -> bool:
    """True when ``path`` holds what was written; a bad file is discarded with one warning.

    A missing file is simply False; a file without a record (written by an older
    version) is discarded quietly, as it cannot be checked.
    """
    try:
        inode = path.stat().st_ino
    except FileNotFoundError:
        return False
    reason = problem(path, sha256=sha256)
    if reason is None:
        return True
    if reason == "missing":
        return False
    if reason == "no checksum record":
        _log.debug("%s %s has no checksum record; rebuilding it", what, path)
    else:
        warn("%s %s is damaged (%s): discarded, making it again", what, path, reason)
    discard(path, inode)
    return False


def discard(path: Path, inode: int | None = None) -> None:
    """Remove a bad file and its record; with ``inode``, only while it is still that file
    (a concurrent run may have just put a good one in its place)."""
    try:
        if inode is None or path.stat().st_ino == inode:
            path.unlink()
            record_path(path).unlink(missing_ok=True)
    except FileNotFoundError:
        pass


def warn(message: str, *args: Any) -> None:
    """One warning: in the Prefect run's log when there is one, else this module's logger."""
    try:
        from prefect import get_run_logger

        logger = get_run_logger()
    except Exception:  # outside a run, or in a worker thread of one
        logger = _log
    logger.warning(message, *args)
