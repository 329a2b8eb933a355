"""The Agents API's Files API for the AgentsAccount: upload, ingest, list, delete.

Two upload modes share POST /files, as on the service: multipart with the bytes inline
(``file`` part; ingested at once, answered ``pending``) or JSON for a presigned PUT (the
answer's ``upload`` envelope; the file stays ``pending`` until POST /files/{id}/complete).
Ingest checks the bytes against ``size_bytes`` and ``mime_type`` and ends ``ready`` or
``failed`` with a reason. A file past its ``expires_at`` reads as ``deleted``; a deleted
or expired file cannot be referenced. Records live in ``files/<id>.json``, bytes in
``blobs/<id>``. Presigned URLs carry an HMAC of the account's secret and an expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reelflow.emulator._util import NotFound, write_json
from reelflow.emulator.agents_inputs import InputProblem, sniff
from reelflow.emulator.keyframes import MAX_IMAGE_BYTES

__all__ = ["FileInvalid", "Files", "UPLOAD_TTL"]

#: Seconds a presigned upload URL stays valid.
UPLOAD_TTL = 3600
MAX_FILE_BYTES = 5 * 1024 ** 3
_PURPOSES, _STATES = ("input", "reference"), ("pending", "ready", "failed", "deleted")
_MEDIA = {"png": "image/", "jpg": "image/", "webp": "image/", "mp4": "video/"}


class FileInvalid(Exception):
    """A refused Files API request: HTTP ``status`` and the problems."""

    def __init__(self, status: int, problems: list[str]):
        self.status, self.problems = status, problems
        super().__init__("; ".join(problems))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_ts(value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise FileInvalid(422, [f"expires_at: {value!r} is not an ISO-8601 time"]) from None


class Files:
    """Mixin: needs ``root``, ``locked()``, ``state()`` of the AgentsAccount."""

    # -- signing -----------------------------------------------------------------------

    def sign(self, path: str, expires: int) -> str:
        key = self.state()["secret"].encode()
        return hmac.new(key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def signed_ok(self, path: str, expires: str, signature: str) -> str | None:
        """None when the signature is good and unexpired, else why not."""
        try:
            when = int(expires)
        except ValueError:
            return "malformed expiry"
        if not hmac.compare_digest(self.sign(path, when), signature or ""):
            return "signature does not match"
        if time.time() > when:
            return "Request has expired"
        return None

    # -- records -----------------------------------------------------------------------

    def _file_path(self, file_id: str) -> Path:
        try:
            uuid.UUID(file_id)
        except ValueError:
            raise NotFound(file_id) from None
        return self.root / "files" / f"{file_id}.json"

    def file_record(self, file_id: str) -> dict[str, Any]:
        try:
            return json.loads(self._file_path(file_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFound(file_id) from None

    def _file_records(self) -> list[dict[str, Any]]:
        found = []
        for path in (self.root / "files").glob("*.json"):
            try:
                found.append(json.loads(path.read_text(encoding="utf-8")))
            except FileNotFoundError:
                continue
        return sorted(found, key=lambda r: r["seq"], reverse=True)

    def file_public(self, record: dict[str, Any]) -> dict[str, Any]:
        """The File object; an expired file reads as deleted."""
        state, deleted = record["state"], record.get("deleted_ts")
        expires = record.get("expires_ts")
        if state != "deleted" and expires is not None and time.time() >= expires:
            state, deleted = "deleted", expires
        return {"id": record["id"], "created_at": _iso(record["created_ts"]),
                "mime_type": record["mime_type"], "purpose": record["purpose"],
                "size_bytes": record["size_bytes"], "state": state,
                "deleted_at": _iso(deleted) if deleted else None,
                "expires_at": _iso(expires) if expires is not None else None,
                "failure_reason": record.get("failure_reason"),
                "filename": record.get("filename"), "user_id": record.get("user_id")}

    # -- changes -----------------------------------------------------------------------

    def create_file(self, fields: dict[str, Any], data: bytes | None) -> dict[str, Any]:
        """Record a file (``data``: the multipart bytes, ingested now; None: presigned)."""
        problems = []
        if data is not None:
            fields.setdefault("size_bytes", len(data))
        if not isinstance(fields.get("mime_type"), str) or not fields["mime_type"]:
            problems.append("mime_type: field required")
        size = fields.get("size_bytes")
        if isinstance(size, str) and size.isdigit():
            size = int(size)
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_FILE_BYTES:
            problems.append("size_bytes: an integer from 1 to 5 GiB is required")
        purpose = fields.get("purpose") or "input"
        if purpose not in _PURPOSES:
            problems.append(f"purpose: {purpose!r} is not one of input, reference")
        expires = None if problems else _parse_ts(fields.get("expires_at"))
        if problems:
            raise FileInvalid(422, problems)
        now = time.time()
        with self.locked():
            state = self.state()
            state["files_created"] = state.get("files_created", 0) + 1
            record = {"id": str(uuid.uuid4()), "seq": state["files_created"],
                      "created_ts": now, "mime_type": fields["mime_type"], "size_bytes": size,
                      "purpose": purpose, "expires_ts": expires, "state": "pending",
                      "filename": fields.get("filename"), "user_id": fields.get("user_id"),
                      "upload_expires": int(now + UPLOAD_TTL)}
            write_json(self._file_path(record["id"]), record)
            write_json(self.root / "state.json", state)
        if data is not None:
            self._receive(record["id"], data)
            self._ingest_file(record["id"])
        return record

    def receive_upload(self, file_id: str, data: bytes) -> None:
        """The bytes of a presigned PUT (the URL was checked by the caller)."""
        record = self.file_record(file_id)
        if record["state"] != "pending":
            raise FileInvalid(409, [f"file {file_id} is {record['state']}, not pending"])
        self._receive(file_id, data)

    def _receive(self, file_id: str, data: bytes) -> None:
        blob = self.root / "blobs" / file_id
        tmp = blob.with_name(f".{file_id}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        tmp.replace(blob)

    def complete_file(self, file_id: str) -> dict[str, Any]:
        """POST /files/{id}/complete: ingest the uploaded bytes; 409 if none arrived."""
        record = self.file_record(file_id)
        if record["state"] == "pending":
            if not (self.root / "blobs" / file_id).exists():
                raise FileInvalid(409, [f"file {file_id}: no bytes were uploaded"])
            record = self._ingest_file(file_id)
        return record

    def _ingest_file(self, file_id: str) -> dict[str, Any]:
        """Check the bytes against the declared size and type; ready or failed."""
        data = (self.root / "blobs" / file_id).read_bytes()
        with self.locked():
            record = self.file_record(file_id)
            kind = sniff(data)
            if len(data) != record["size_bytes"]:
                reason = f"received {len(data)} bytes, size_bytes said {record['size_bytes']}"
            elif kind is None or not record["mime_type"].startswith(_MEDIA[kind]):
                reason = f"the bytes are not the declared {record['mime_type']}"
            elif kind != "mp4" and len(data) > MAX_IMAGE_BYTES:
                reason = f"image larger than {MAX_IMAGE_BYTES} bytes"
            else:
                reason = None
            record["state"] = "failed" if reason else "ready"
            record["failure_reason"] = reason
            record["ext"] = kind
            write_json(self._file_path(file_id), record)
        return record

    def delete_file(self, file_id: str) -> None:
        """Soft-delete: the record stays (state deleted), the bytes go."""
        with self.locked():
            record = self.file_record(file_id)
            if record["state"] != "deleted":
                record["state"], record["deleted_ts"] = "deleted", time.time()
                write_json(self._file_path(file_id), record)
        (self.root / "blobs" / file_id).unlink(missing_ok=True)

    # -- reads -------------------------------------------------------------------------

    def list_files(self, cursor: str | None, limit: int, purpose: str | None,
                   state: str | None, *, strict: bool = True) -> dict[str, Any]:
        """Newest first; ``cursor`` is the opaque position after the last one seen.

        A cursor this API did not issue is a 400, or an empty page when not ``strict``.
        """
        if purpose is not None and purpose not in _PURPOSES:
            raise FileInvalid(422, [f"purpose: {purpose!r} is not one of input, reference"])
        if state is not None and state not in _STATES:
            raise FileInvalid(422, [f"state: {state!r} is not one of {', '.join(_STATES)}"])
        after = None
        if cursor:
            try:
                after = int(base64.urlsafe_b64decode(cursor.encode()).decode())
            except ValueError:
                if strict:
                    raise FileInvalid(400, ["cursor: not a cursor this API issued"]) from None
                after = 0
        files = [self.file_public(r) | {"_seq": r["seq"]} for r in self._file_records()
                 if after is None or r["seq"] < after]
        files = [f for f in files if (purpose is None or f["purpose"] == purpose) and
                 (f["state"] == state if state else f["state"] != "deleted")]
        page, more = files[:limit], len(files) > limit
        cursor_out = base64.urlsafe_b64encode(str(page[-1]["_seq"]).encode()).decode() \
            if more else None
        for item in page:
            del item["_seq"]
        return {"data": page, "has_more": more, "next_cursor": cursor_out}

    def file_blob(self, file_id: str, where: str) -> Path:
        """The bytes of a ready file, for a generation's ref; InputProblem otherwise."""
        try:
            public = self.file_public(self.file_record(file_id))
        except NotFound:
            raise InputProblem(None, f"{where}.file_id: file {file_id} not found") from None
        if public["state"] != "ready":
            raise InputProblem(None, f"{where}.file_id: file {file_id} is "
                                     f"{public['state']}, not ready")
        ext = self.file_record(file_id).get("ext") or "bin"
        blob, link = self.root / "blobs" / file_id, self.root / "inputs" / f"{file_id}.{ext}"
        if not link.exists():
            link.write_bytes(blob.read_bytes())
        return link

    def file_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self._file_records():
            state = self.file_public(record)["state"]
            counts[state] = counts.get(state, 0) + 1
        return counts
