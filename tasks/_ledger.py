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

Locks are ``fcntl.flock`` on a per-key file under REELFLOW_HOME: the kernel drops
them when the holding process dies (even by kill -9), so a crashed run never leaves
a lock that blocks the next one. They order the processes sharing one
REELFLOW_HOME; ``lock_domain`` names that group, so a record written by it while
sending can be told from one another machine is sending right now.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, PrivateAttr

from reelflow.config import reelflow_home
from reelflow.tasks.store import ClipStore, atomic_write_path

__all__ = ["Ledger", "LedgerConflict", "LedgerEntry", "PaidAttempt"]


class LedgerConflict(Exception):
    """Another machine changed the record since it was read: read it again and follow it."""


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

    def attempt_ended(self, state: str, failure_reason: str | None = None) -> None:
        """Mark the attempt on ``generation_id`` as ended (completed or failed)."""
        for i, attempt in enumerate(self.history):
            if attempt.generation_id == self.generation_id and attempt.state == "sent":
                self.history[i] = attempt.ended(state, failure_reason)


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

    def _prefix(self) -> str:
        folder = self.shared.bucket_folder
        return f"{folder}/ledger/" if folder else "ledger/"

    def _object_key(self, key: str) -> str:
        return f"{self._prefix()}{key}.json"

    def where(self, key: str) -> str:
        """Where ``key``'s record lives, for messages: a local path or an s3:// URI."""
        if self.shared is not None:
            return f"s3://{self.shared.bucket_name}/{self._object_key(key)}"
        return str(self._path(key))

    def read(self, key: str) -> LedgerEntry | None:
        """The entry for ``key``, or None when nothing was ever submitted for it."""
        if self.shared is not None:
            from reelflow.tasks import _s3

            found = _s3.read_versioned(self.shared._client(), self.shared.bucket_name,
                                       self._object_key(key))
            if found is not None:
                self._etags[key] = found[1]
                return LedgerEntry.model_validate_json(found[0])
            self._etags.pop(key, None)  # the next write must create it: If-None-Match
        try:  # with a shared ledger: what this machine recorded before its store was S3
            return LedgerEntry.model_validate_json(self._path(key).read_bytes())
        except FileNotFoundError:
            return None

    def write(self, entry: LedgerEntry) -> None:
        """Persist ``entry`` atomically and durably.

        Raises:
            LedgerConflict: shared ledger only: the record changed since this ledger last
                read or wrote it (nothing was written).
        """
        if self.shared is not None:
            from reelflow.tasks import _s3

            try:
                self._etags[entry.key] = _s3.write_if(
                    self.shared._client(), self.shared.bucket_name, self._object_key(entry.key),
                    entry.model_dump_json().encode(), self._etags.get(entry.key))
            except _s3.Conflict as conflict:
                raise LedgerConflict(str(conflict)) from None
            return
        target = self._path(entry.key)
        tmp = atomic_write_path(target)
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(entry.model_dump_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)

    def is_stored(self, key: str, store) -> bool:
        """True when ``key``'s clip was downloaded and is still in ``store``."""
        entry = self.read(key)
        return bool(entry and entry.sha256 and store.has(entry.sha256))

    def _entries(self) -> Iterator[LedgerEntry]:
        if self.shared is not None:
            from reelflow.tasks import _s3

            client, bucket = self.shared._client(), self.shared.bucket_name
            for object_key in _s3.list_keys(client, bucket, self._prefix()):
                found = _s3.read_versioned(client, bucket, object_key)
                if found is not None:
                    yield LedgerEntry.model_validate_json(found[0])
        for path in self.root.glob("*/*.json"):
            try:
                yield LedgerEntry.model_validate_json(path.read_bytes())
            except (OSError, ValueError):
                continue

    def entries(self) -> Iterator[LedgerEntry]:
        """Every readable record (shared ones first)."""
        return self._entries()

    def generation_ids(self) -> set[str]:
        """Every generation id the ledger knows (read when reconciling a lost create)."""
        return {entry.generation_id for entry in self._entries() if entry.generation_id}

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
