"""The spend ledger: what was paid for, by cache key, recorded before waiting.

One small JSON record per request key. The moment a create is sent is written
before the send, and the generation id the moment the call returns, so a run
killed while the clip dreams resumes waiting on the same id, and one killed while
the create was in flight finds the generation it made: neither pays again.

Where the records live follows the clip store. With a local store they are files
under REELFLOW_HOME/ledger (fsync, atomic rename). With an S3 store they are
objects beside the clips (``<prefix>/ledger/<key>.json``), shared by every machine
using that store, and every write is a compare-and-swap (S3's conditional PUT): of
two machines acting on one key, one wins and the other reads what it did
(``LedgerConflict``) and follows it instead of paying too.

A record read back is checked: one that is empty, not JSON, not a ledger record or
filed under another key is *unreadable*. ``read`` warns once, naming the file or
object, and returns an entry that says so (``LedgerEntry.unreadable``) instead of
failing: planning counts the request as unpaid, and a render recovers the record
from the account (``_generate``) or refuses that one shot, never the others.

A generation id goes into a record only after it is *claimed* for that record's key
(``claim``: one create-only file or object per generation id, ``claims/<id[:2]>/<id>.json``
beside the records; in S3 a conditional PUT),
so takes of one payload, whose creates the account cannot tell apart, never adopt the
same generation, on one machine or across machines sharing an S3 store.

Locks are ``fcntl.flock`` on a per-key file under REELFLOW_HOME: the kernel drops
them when the holding process dies (even by kill -9), so a crashed run never leaves
a lock that blocks the next one. They order the processes sharing one
REELFLOW_HOME; ``lock_domain`` names that group, so a record written by it while
sending can be told from one another machine is sending right now.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, field_validator

from reelflow.config import reelflow_home
from reelflow.errors import LedgerConflict, WriteConflict
from reelflow.tasks.store import ClipStore, atomic_write_path

__all__ = ["Ledger", "LedgerConflict", "LedgerEntry", "PaidAttempt"]

_log = logging.getLogger("reelflow.tasks.ledger")
#: Unreadable records (place and content) already reported by this process: each is said
#: once, not once per read.
_WARNED: set[tuple[str, bytes]] = set()
#: What a generation id may look like to name a claim file (the API's are UUIDs).
_GENERATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


class PaidAttempt(BaseModel):
    """One paid call for a key: its generation id, price, who sent it, and how it ended."""

    generation_id: str
    cost_usd: float = 0.0
    #: When it was sent (ISO 8601 UTC) and when it ended (completed or failed).
    sent_at: str | None = None
    ended_at: str | None = None
    #: The Prefect flow run that paid for it (None: adopted from a run that died sending it).
    run_id: str | None = None
    state: Literal["sent", "completed", "failed"] = "sent"
    failure_reason: str | None = None

    def ended(self, state: str, failure_reason: str | None = None) -> "PaidAttempt":
        """This attempt, finished now in ``state``."""
        return self.model_copy(update={"state": state, "failure_reason": failure_reason,
                                       "ended_at": datetime.now(timezone.utc).isoformat()})


class LedgerEntry(BaseModel):
    """What is known about one request key."""

    key: str
    shot_id: str = ""
    generation_id: str | None = None
    sha256: str | None = None
    #: ray-3.2 with ``exr``: the stored EXR export (a ZIP of EXR frames) of the same generation.
    exr_sha256: str | None = None
    cost_usd: float = 0.0
    attempts: int = 0
    prior_video: str | None = None
    #: When a create was sent whose id is not known yet (ISO 8601 UTC). Written before the
    #: send: a run killed while the request was in flight leaves it, and the next run asks
    #: the account for the generation that request made instead of sending it again.
    sending_since: str | None = None
    #: The lock domain (see ``Ledger.lock_domain``) of the run that wrote ``sending_since``.
    sender: str | None = None
    #: What the send in flight costs: recorded with ``sending_since`` so a generation
    #: adopted by hand (``reelflow resolve``) is counted like one adopted automatically.
    sending_cost_usd: float | None = None
    #: Every paid call made for this key, oldest first (failed and resubmitted ones too).
    history: list[PaidAttempt] = []
    #: Set (never written) when the stored record could not be read: where it is (a path
    #: or s3:// URI) and why. Such an entry knows nothing but its key.
    unreadable: str | None = Field(default=None, exclude=True)

    def attempt_ended(self, state: str, failure_reason: str | None = None) -> None:
        """Mark the attempt on ``generation_id`` as ended (completed or failed)."""
        for i, attempt in enumerate(self.history):
            if attempt.generation_id == self.generation_id and attempt.state == "sent":
                self.history[i] = attempt.ended(state, failure_reason)

    @field_validator("sending_since")
    @classmethod
    def _iso_time(cls, value: str | None) -> str | None:
        if value is not None:
            datetime.fromisoformat(value)
        return value


def _why(data: bytes, error: ValidationError) -> str:
    """A short reason a record does not validate (the whole error would be many lines)."""
    if not data.strip():
        return "empty"
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return "not valid JSON"
    where = ".".join(str(part) for part in first["loc"])
    return f"not a ledger record: {where + ': ' if where else ''}{first['msg']}"


def _parse_entry(data: bytes, key: str, where: str) -> LedgerEntry:
    """The record ``data`` stored for ``key`` at ``where``; an unreadable one is reported
    once (one warning naming ``where``) and returned as ``LedgerEntry(unreadable=...)``."""
    try:
        entry = LedgerEntry.model_validate_json(data)
        reason = None if entry.key == key else f"filed under {key} but records {entry.key}"
    except ValidationError as error:
        reason = _why(data, error)
    if reason is None:
        return entry
    if (where, data) not in _WARNED:
        _WARNED.add((where, data))
        _log.warning("Ledger record %s is unreadable (%s): ignored; a render looks its "
                     "generation up on the account", where, reason)
    return LedgerEntry(key=key, unreadable=f"{where} ({reason})")


class Ledger(BaseModel):
    """Per-key records (local files, or objects shared through an S3 clip store) and locks."""

    root: Path
    shared: ClipStore | None = None
    _etags: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def default(cls) -> "Ledger":
        """The local ledger under REELFLOW_HOME."""
        return cls(root=reelflow_home() / "ledger")

    @classmethod
    def for_store(cls, store: ClipStore) -> "Ledger":
        """The ledger that goes with ``store``: shared beside its clips when it is S3."""
        return cls(root=reelflow_home() / "ledger", shared=store if store.is_s3 else None)

    # -- records ----------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    @staticmethod
    def _object_name(key: str) -> str:
        """The record's object name in a shared store (under the store's folder)."""
        return f"ledger/{key}.json"

    def where(self, key: str) -> str:
        """Where ``key``'s record lives, for messages: a local path or an s3:// URI."""
        if self.shared is not None:
            return self.shared.object_uri(self._object_name(key))
        return str(self._path(key))

    def read(self, key: str) -> LedgerEntry | None:
        """The entry for ``key``, or None when nothing was ever submitted for it.

        A record that cannot be read is an entry with ``unreadable`` set (warned about
        once); writing an entry for ``key`` replaces it.
        """
        if self.shared is not None:
            name = self._object_name(key)
            found = self.shared.read_object(name)
            if found is not None:
                self._etags[key] = found.etag
                return _parse_entry(found.body, key, self.shared.object_uri(name))
            self._etags.pop(key, None)  # the next write must create it: If-None-Match
        path = self._path(key)  # with a shared ledger: what this machine recorded before
        try:
            return _parse_entry(path.read_bytes(), key, str(path))
        except FileNotFoundError:
            return None

    def write(self, entry: LedgerEntry) -> None:
        """Persist ``entry`` atomically and durably.

        Raises:
            LedgerConflict: shared ledger only: the record changed since this ledger last
                read or wrote it (nothing was written).
        """
        if self.shared is not None:
            try:
                self._etags[entry.key] = self.shared.write_object(
                    self._object_name(entry.key), entry.model_dump_json().encode(),
                    self._etags.get(entry.key))
            except WriteConflict as conflict:
                raise LedgerConflict(str(conflict)) from None
            return
        target = self._path(entry.key)
        tmp = atomic_write_path(target)
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(entry.model_dump_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)

    def is_stored(self, key: str, store, suffix: str = ".mp4") -> bool:
        """True when ``key``'s clip (or still: ``suffix`` ".png") was downloaded and is still
        in ``store``."""
        entry = self.read(key)
        return bool(entry and entry.sha256 and store.has(entry.sha256, suffix))

    def _entries(self) -> Iterator[LedgerEntry]:
        """Every record (unreadable ones as such; claims are not records)."""
        if self.shared is not None:
            for object_name in self.shared.list_objects("ledger/"):
                name = object_name[len("ledger/"):]
                if "/" in name or not name.endswith(".json"):
                    continue  # claims/...
                found = self.shared.read_object(object_name)
                if found is not None:
                    yield _parse_entry(found.body, name[:-len(".json")],
                                       self.shared.object_uri(object_name))
        for path in self.root.glob("??/*.json"):
            with contextlib.suppress(OSError):
                yield _parse_entry(path.read_bytes(), path.stem, str(path))

    def entries(self) -> Iterator[LedgerEntry]:
        """Every readable record (shared ones first); unreadable ones are warned about."""
        return (entry for entry in self._entries() if not entry.unreadable)

    def generation_ids(self) -> set[str]:
        """Every generation id the ledger's records know (read when reconciling a lost create)."""
        return {entry.generation_id for entry in self._entries() if entry.generation_id}

    # -- claims -----------------------------------------------------------------------------

    def claim(self, generation_id: str, key: str) -> bool:
        """Make ``generation_id`` request ``key``'s, once and for all: True when it is now
        ``key``'s (just claimed, or claimed by ``key`` before), False when another key (or
        an unreadable claim) holds it. Call before recording or adopting a generation.

        Create-only: a local file linked into place, or an S3 object written with
        ``If-None-Match: *``; of two machines claiming one id, one wins.
        """
        if not _GENERATION_ID.fullmatch(generation_id):
            return False
        body = json.dumps({"generation_id": generation_id, "key": key}).encode()
        owner = self._create_claim(generation_id, body)
        return owner is None or owner == key

    def _create_claim(self, generation_id: str, body: bytes) -> str | None:
        """None when this call created the claim, else the key that holds it ("" unreadable)."""
        if self.shared is not None:
            name = f"ledger/claims/{generation_id[:2]}/{generation_id}.json"
            try:
                self.shared.write_object(name, body, None)
                return None
            except WriteConflict:
                found = self.shared.read_object(name)
                return _claim_owner(found.body if found else b"", self.shared.object_uri(name))
        path = self.root / "claims" / generation_id[:2] / f"{generation_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = atomic_write_path(path)
        with open(tmp, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # create-only: fails when the claim exists
            return None
        except FileExistsError:
            return _claim_owner(path.read_bytes(), str(path))
        finally:
            tmp.unlink()

    # -- locks ------------------------------------------------------------------------------

    def lock_domain(self) -> str:
        """A random name shared by every process using this REELFLOW_HOME (and its locks)."""
        path = self.root / "lock-domain"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = atomic_write_path(path)
            tmp.write_text(secrets.token_hex(8))
            with contextlib.suppress(OSError):
                os.link(tmp, path)  # first writer wins; everyone reads the same name
            tmp.unlink()
        return path.read_text().strip()

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold the exclusive lock for ``key``; other processes and threads here wait."""
        path = self.root / "locks" / f"{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _claim_owner(data: bytes, where: str) -> str:
    """The key a claim names; "" (held by nobody we know) when it cannot be read."""
    try:
        return str(json.loads(data)["key"])
    except (ValueError, KeyError, TypeError):
        if (where, data) not in _WARNED:
            _WARNED.add((where, data))
            _log.warning("Ledger claim %s is unreadable: its generation is never adopted", where)
        return ""
