"""The spend ledger: what was paid for, by cache key, recorded before waiting.

One small JSON file per request key under REELFLOW_HOME/ledger. The moment a create
is sent is written before the send, and the generation id the moment the call
returns, so a run killed while the clip dreams resumes waiting on the same id, and
one killed while the create was in flight finds the generation it made: neither
pays again.

Locks are ``fcntl.flock`` on a per-key file: the kernel drops them when the
holding process dies (even by kill -9), so a crashed run never leaves a lock
that blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from reelflow.config import reelflow_home
from reelflow.tasks.store import atomic_write_path

__all__ = ["Ledger", "LedgerEntry"]


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


class Ledger(BaseModel):
    """Per-key records and locks in a directory."""

    root: Path

    @classmethod
    def default(cls) -> "Ledger":
        """The ledger under REELFLOW_HOME."""
        return cls(root=reelflow_home() / "ledger")

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def read(self, key: str) -> LedgerEntry | None:
        """The entry for ``key``, or None when nothing was ever submitted for it."""
        try:
            return LedgerEntry.model_validate_json(self._path(key).read_bytes())
        except FileNotFoundError:
            return None

    def write(self, entry: LedgerEntry) -> None:
        """Persist ``entry`` atomically and durably (fsync before rename)."""
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

    def generation_ids(self) -> set[str]:
        """Every generation id the ledger records (so reconciliation never adopts one twice)."""
        ids = set()
        for path in self.root.glob("*/*.json"):
            try:
                entry = LedgerEntry.model_validate_json(path.read_bytes())
            except (OSError, ValueError):
                continue
            if entry.generation_id:
                ids.add(entry.generation_id)
        return ids

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold the exclusive lock for ``key``; other processes and threads wait."""
        path = self.root / "locks" / f"{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
