"""Local inputs reach the Agents API through its Files API: uploaded once per content hash.

A record per content hash (``<ledger root>/files/<sha256>.json``: the file id) is
written once the file is ``ready``, and reused while the API still has it ready and not
about to expire (checked with ``files.get`` before every reuse; a file deleted, expired,
failed or unknown to this account is uploaded again). Uploads of one hash are serialised
by the ledger's per-key lock, so two shots (or two runs) using one image upload it once.
Uploads are free: nothing here is a paid call.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import luma_agents
from pydantic import BaseModel

from reelflow.errors import GenerationFailed
from reelflow.tasks._ledger import Ledger
from reelflow.tasks.store import atomic_write_path

__all__ = ["AgentsFiles", "FileRecord", "media_type"]

#: A file expiring sooner than this is uploaded again rather than referenced.
EXPIRY_MARGIN = timedelta(minutes=30)
#: How long an upload may stay ``pending`` (ingest, moderation) before it is given up on.
READY_DEADLINE_S = 300.0

_MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                ".webp": "image/webp", ".mp4": "video/mp4", ".mov": "video/quicktime"}


def media_type(path: Path) -> str:
    """The MIME type of a local input, by its suffix."""
    return _MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")


class FileRecord(BaseModel):
    """An uploaded file: which content it holds and its id on the account."""

    sha256: str
    file_id: str
    uploaded_at: str


class AgentsFiles:
    """The Files API of one Agents API client, with records beside ``ledger``."""

    def __init__(self, client: luma_agents.Luma, ledger: Ledger):
        self.client = client
        self.ledger = ledger
        self.root = ledger.root / "files"

    def _path(self, sha256: str) -> Path:
        return self.root / f"{sha256}.json"

    def file_id(self, path: Path, sha256: str) -> str:
        """The id of a ``ready`` file holding ``path``'s bytes (``sha256``), uploading it
        only when no usable upload is recorded."""
        with self.ledger.lock(f"file-{sha256}"):
            record = self._read(sha256)
            if record is not None and self._usable(record.file_id):
                return record.file_id
            file_id = self._upload(path, sha256)
            self._write(FileRecord(sha256=sha256, file_id=file_id,
                                   uploaded_at=datetime.now(timezone.utc).isoformat()))
            return file_id

    def _read(self, sha256: str) -> FileRecord | None:
        try:
            return FileRecord.model_validate_json(self._path(sha256).read_bytes())
        except (OSError, ValueError):  # none, or unreadable: upload again (uploads are free)
            return None

    def _write(self, record: FileRecord) -> None:
        target = self._path(record.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = atomic_write_path(target)
        tmp.write_text(record.model_dump_json(), encoding="utf-8")
        tmp.replace(target)

    def _usable(self, file_id: str) -> bool:
        """True when the account still has ``file_id`` ready and not about to expire."""
        try:
            found = self.client.files.get(file_id)
        except (luma_agents.NotFoundError, luma_agents.PermissionDeniedError):
            return False
        if found.state == "pending":
            try:
                found = self._wait_ready(file_id, found.filename or file_id)
            except GenerationFailed:  # ingest refused it after all: upload again
                return False
        expires = found.expires_at
        soon = expires is not None and expires - datetime.now(timezone.utc) < EXPIRY_MARGIN
        return found.state == "ready" and found.deleted_at is None and not soon

    def _upload(self, path: Path, sha256: str) -> str:
        """Upload ``path`` (presigned PUT, then complete) and wait until it is ready."""
        data = path.read_bytes()
        if len(data) == 0 or hashlib.sha256(data).hexdigest() != sha256:
            raise GenerationFailed(f"{path} changed since the shot list was checked; "
                                   "nothing was sent")
        created = self.client.files.create(mime_type=media_type(path), size_bytes=len(data),
                                           filename=path.name, purpose="input")
        if created.upload is not None:
            response = httpx.put(created.upload.url, content=data,
                                 headers=created.upload.headers or {}, timeout=120)
            response.raise_for_status()
            self.client.files.complete(created.id)
        self._wait_ready(created.id, path.name)
        return created.id

    def _wait_ready(self, file_id: str, name: str):
        """Poll until the file is ready; GenerationFailed when ingest refused it."""
        give_up = time.monotonic() + READY_DEADLINE_S
        interval = 0.1
        while True:
            found = self.client.files.get(file_id)
            if found.state == "ready":
                return found
            if found.state in ("failed", "deleted"):
                reason = found.failure_reason or found.state
                raise GenerationFailed(f"the Agents API did not accept {name}: {reason}; "
                                       "nothing was paid", failure_reason=reason)
            if time.monotonic() > give_up:
                raise GenerationFailed(f"{name} was still being ingested after "
                                       f"{READY_DEADLINE_S:.0f}s; nothing was paid")
            time.sleep(interval)
            interval = min(interval * 2, 2.0)
