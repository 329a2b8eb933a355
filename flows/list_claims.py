"""Which machine renders a shot list now, and which version was rendered: records in S3.

``produce`` on several workers, all scheduled on one ``s3://`` folder, must render each
list once per change and never one list twice at the same time. Each list (folder URI,
file name, profile) has one record in the shared store, ``<prefix>/production/<key>.json``:
the fingerprint last rendered and, while a render runs, who holds the list and until when.
Every write is a compare-and-swap (S3 conditional PUT): of two workers claiming one list,
one wins; the other reads the claim and skips the list. A claim whose holder died expires
after REELFLOW_LIST_LEASE_S (default 3600 s) and the list is claimed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from reelflow.config import settings
from reelflow.errors import WriteConflict
from reelflow.tasks.store import ClipStore

__all__ = ["ListClaims"]

def lease_s() -> float:
    return settings().seconds("list_lease", 3600)


@dataclass
class ListClaims:
    """Claims on lists of one folder, kept in a shared S3 store."""

    store: ClipStore
    folder: str
    profile: str
    holder: str = ""

    def __post_init__(self):
        self.holder = self.holder or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def _key(self, name: str) -> str:
        digest = hashlib.sha256(f"{self.folder}\0{name}\0{self.profile}".encode()).hexdigest()
        return f"production/{digest}.json"  # an object name under the store's folder

    def _read(self, name: str) -> tuple[dict, str | None]:
        found = self.store.read_object(self._key(name))
        if found is None:
            return {}, None
        try:
            record = json.loads(found.body)
        except ValueError:  # not ours to trust: treat as no record, overwritten by CAS
            record = {}
        return (record if isinstance(record, dict) else {}), found.etag

    def _write(self, name: str, record: dict, etag: str | None) -> None:
        self.store.write_object(self._key(name), json.dumps(record).encode(), etag)

    def claim(self, name: str, fingerprint: str) -> Literal["claimed", "unchanged", "busy"]:
        """Claim ``name`` to render ``fingerprint``, unless it was rendered or is held elsewhere."""
        record, etag = self._read(name)
        if record.get("rendered") == fingerprint:
            return "unchanged"
        holder, until = record.get("holder"), float(record.get("until") or 0)
        if holder and holder != self.holder and until > time.time():
            return "busy"
        record.update(holder=self.holder, until=time.time() + lease_s(), fingerprint=fingerprint)
        try:
            self._write(name, record, etag)
        except WriteConflict:  # another worker claimed (or finished) it first
            return "busy"
        return "claimed"

    def release(self, name: str, rendered: str | None = None) -> None:
        """Give the claim up; with ``rendered``, record that fingerprint as rendered."""
        for _ in range(5):
            record, etag = self._read(name)
            if record.get("holder") != self.holder:
                return  # expired and taken over: the new holder decides
            record.update(holder=None, until=None)
            if rendered:
                record["rendered"] = rendered
            try:
                self._write(name, record, etag)
                return
            except WriteConflict:
                continue
