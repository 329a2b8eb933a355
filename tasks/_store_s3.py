"""The S3 half of the clip store (``S3Side``, mixed into ``reelflow.tasks.store.ClipStore``).

Clips: a HEAD, a verified download into the local cache, an upload-once, and the access
check made before any spend. Records: the public versioned-object API the ledger, the
production claims and the heartbeats use, on object *names* under the store's folder
(``ledger/<key>.json`` is ``s3://bucket/<folder>/ledger/<key>.json``):

- ``read_object(name)``: the bytes and ETag (``Versioned``), or None when absent;
- ``write_object(name, body, etag)``: compare-and-swap, written only if the object is
  still at ``etag`` (None: still absent), else ``reelflow.errors.WriteConflict``;
- ``replace_object``, ``delete_object``, ``list_objects``, ``object_ages``, ``object_age_s``,
  ``object_uri``.
"""

from __future__ import annotations

import logging
import mimetypes
import os
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import NamedTuple

from reelflow.errors import StoreNotConfigured, StoreUnavailable
from reelflow.tasks._verify import sha256_file, warn, write_record

__all__ = ["S3Side", "Versioned"]

_log = logging.getLogger("reelflow.tasks.store")

#: (bucket, key) of S3 objects found not to be their SHA-256: the next put overwrites them.
_DAMAGED_OBJECTS: set[tuple[str, str]] = set()
#: S3 stores whose access was checked in this process: (client id, bucket, prefix).
_ACCESS_CHECKED: set[tuple[int, str | None, str]] = set()


class Versioned(NamedTuple):
    """An object's bytes and the ETag (version) they were read at."""

    body: bytes
    etag: str


def _kind(suffix: str) -> str:
    return "stored clip" if suffix == ".mp4" else "stored image"


class S3Side:
    """S3 methods of ``ClipStore`` (its fields ``bucket_name``, ``bucket_folder``,
    ``endpoint_url``, ``region_name`` and private ``_credentials``)."""

    def _client(self):
        from reelflow.tasks import _s3

        return _s3.client_for(self.endpoint_url, self.region_name, self._credentials)

    # -- versioned objects under the store's folder ---------------------------------------------

    def s3_key(self, name: str) -> str:
        """The bucket key of the object ``name`` (relative to the store's folder)."""
        return f"{self.bucket_folder}/{name}" if self.bucket_folder else name

    def object_uri(self, name: str) -> str:
        """``s3://bucket/<folder>/<name>``, for messages."""
        return f"s3://{self.bucket_name}/{self.s3_key(name)}"

    def read_object(self, name: str) -> Versioned | None:
        """The object's bytes and ETag, or None when it does not exist (other errors raise)."""
        from reelflow.tasks import _s3

        found = _s3.read_versioned(self._client(), self.bucket_name, self.s3_key(name))
        return None if found is None else Versioned(*found)

    def write_object(self, name: str, body: bytes, etag: str | None) -> str:
        """Write ``body`` only if the object is still at ``etag`` (None: only if absent).

        Returns:
            The new ETag.

        Raises:
            WriteConflict: another writer changed (or created) it since it was read.
        """
        from reelflow.tasks import _s3

        return _s3.write_if(self._client(), self.bucket_name, self.s3_key(name), body, etag)

    def replace_object(self, name: str, body: bytes) -> None:
        """Write ``body`` whatever is there (a heartbeat: the last writer is right)."""
        self._client().put_object(Bucket=self.bucket_name, Key=self.s3_key(name), Body=body)

    def delete_object(self, name: str) -> None:
        """Remove the object (absent already is fine)."""
        self._client().delete_object(Bucket=self.bucket_name, Key=self.s3_key(name))

    def list_objects(self, prefix: str) -> list[str]:
        """The names (relative to the store's folder) of every object under ``prefix``."""
        from reelflow.tasks import _s3

        start = len(self.s3_key(""))
        return [key[start:] for key in _s3.list_keys(self._client(), self.bucket_name,
                                                     self.s3_key(prefix))]

    def object_ages(self, prefix: str) -> dict[str, float]:
        """Name -> seconds since it was written (S3 server's clock) of each object under
        ``prefix``, from the listing alone."""
        start, ages = len(self.s3_key("")), {}
        pages = self._client().get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket_name, Prefix=self.s3_key(prefix))
        for page in pages:
            now = parsedate_to_datetime(page["ResponseMetadata"]["HTTPHeaders"]["date"])
            for obj in page.get("Contents", []):
                ages[obj["Key"][start:]] = (now - obj["LastModified"]).total_seconds()
        return ages

    def object_age_s(self, name: str) -> float | None:
        """Seconds since the object was last written, by the S3 server's clock; None: absent.

        Raises:
            botocore.exceptions.ClientError: any failure but "not found".
        """
        from botocore.exceptions import ClientError

        from reelflow.tasks import _s3

        try:
            head = self._client().head_object(Bucket=self.bucket_name, Key=self.s3_key(name))
        except ClientError as error:
            if _s3.status_of(error) == 404:
                return None
            raise
        now = parsedate_to_datetime(head["ResponseMetadata"]["HTTPHeaders"]["date"])
        return (now - head["LastModified"]).total_seconds()

    # -- clips ----------------------------------------------------------------------------------

    def _s3_has(self, sha256: str, suffix: str) -> bool:
        from reelflow.tasks import _s3

        return _s3.exists(self._client(), self.bucket_name, self.object_key(sha256, suffix))

    def _download(self, sha256: str, suffix: str, target: Path) -> bool:
        """S3 → local cache, verified and atomic; False when the object is absent or damaged.

        A download that is not its SHA-256 is tried once more (the damage may have been in
        transit); an object damaged twice is left in place (nothing is lost before the
        good bytes are in hand) and marked, so the next ``put_file`` of it overwrites it.
        """
        from reelflow.tasks import _s3

        client, key = self._client(), self.object_key(sha256, suffix)
        if (self.bucket_name, key) in _DAMAGED_OBJECTS:
            return False  # said once; the put that follows the fetch replaces it
        for _attempt in range(2):
            staging = self.staging_path(suffix)
            try:
                if not _s3.download(client, self.bucket_name, key, staging):
                    return False
                if sha256_file(staging) == sha256:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    write_record(target, staging, sha256=sha256)
                    os.replace(staging, target)
                    _log.debug("fetched %s into the local cache", self.uri_for(sha256, suffix))
                    return True
            finally:
                staging.unlink(missing_ok=True)
        warn("%s %s does not match its SHA-256: it is fetched again and stored over",
             _kind(suffix), self.uri_for(sha256, suffix))
        _DAMAGED_OBJECTS.add((self.bucket_name, key))
        return False

    def _upload(self, sha256: str, suffix: str, source: Path) -> None:
        """Upload once: a HEAD skips sending bytes that are there; the PUT is conditional anyway."""
        from reelflow.tasks import _s3

        client, key = self._client(), self.object_key(sha256, suffix)
        content_type = mimetypes.guess_type(f"x{suffix}")[0] or "application/octet-stream"
        if (self.bucket_name, key) in _DAMAGED_OBJECTS:  # these bytes are the good ones
            _s3.put_over(client, self.bucket_name, key, source, content_type)
            _DAMAGED_OBJECTS.discard((self.bucket_name, key))
            return
        if _s3.exists(client, self.bucket_name, key):
            return
        _s3.put_if_absent(client, self.bucket_name, key, source, content_type)

    def check_access(self) -> None:
        """Before any spend, for an S3 store: the bucket name is valid, credentials are found,
        and one LIST (at most one key) under the prefix succeeds. Once per process per store
        and credentials; a local store has nothing to check.

        Raises:
            StoreNotConfigured: a bad bucket name, no credentials, credentials the server
                refuses (wrong secret, unknown key id, no permission), or no such bucket.
            StoreUnavailable: the endpoint cannot be reached, or the server failed.
        """
        if not self.is_s3:
            return
        from botocore.exceptions import BotoCoreError, ClientError

        from reelflow.tasks import _s3

        where = f"clip store s3://{self.bucket_name}/{self.bucket_folder}"
        if problem := _s3.bucket_name_problem(self.bucket_name or ""):
            raise StoreNotConfigured(f"{where}: {problem}")
        self.require_remote_urls()
        client = self._client()
        checked = (id(client), self.bucket_name, self.bucket_folder)
        if checked in _ACCESS_CHECKED:
            return
        try:
            _s3.check_access(client, self.bucket_name, self.bucket_folder)
        except ClientError as error:
            if _s3.status_of(error) >= 500:
                raise StoreUnavailable(f"{where}: the S3 server failed: {_s3.describe(error)}") from None
            raise StoreNotConfigured(f"{where}: S3 refused access: {_s3.describe(error)}") from None
        except BotoCoreError as error:
            raise StoreUnavailable(f"{where}: S3 cannot be reached at "
                                   f"{self.endpoint_url or 'AWS'}: {_s3.describe(error)}") from None
        _ACCESS_CHECKED.add(checked)
