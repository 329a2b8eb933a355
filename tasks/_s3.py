"""The few S3 calls the clip store makes, over boto3, with clients made lazily.

boto3 is imported only when an S3 store is used, and one client is kept per
(endpoint, region, credential source): clients are thread-safe and slow to build.
Credentials come from boto3's own chain (AWS_* environment, profile, instance
role); nothing here logs or stores them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

__all__ = [
    "client_for",
    "credentials_available",
    "download",
    "exists",
    "presign_get",
    "put_if_absent",
    "region",
]

_log = logging.getLogger("reelflow.tasks._s3")

#: Used for signing when neither the store nor the environment names a region.
DEFAULT_REGION = "us-east-1"

_clients: dict[tuple, Any] = {}
_clients_lock = threading.Lock()


def region(explicit: str | None = None) -> str:
    """The signing region: the store's, else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1."""
    return (explicit or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            or DEFAULT_REGION)


def _credential_fingerprint() -> str:
    """Tell credential sources apart without keeping any secret in the cache key."""
    parts = [os.environ.get(name, "") for name in
             ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def client_for(endpoint_url: str | None, region_name: str | None = None):
    """The S3 client for these settings, built on first use and then reused."""
    region_name = region(region_name)
    key = (endpoint_url, region_name, _credential_fingerprint())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                signature_version="s3v4",  # presigned URLs that expire; needed by most S3 servers
                # path-style works on every S3-compatible server; AWS itself accepts it too
                s3={"addressing_style": "path" if endpoint_url else "auto"},
                # newer botocore sends CRC trailers that some S3-compatible servers reject
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 5, "mode": "standard"},
            )
            client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url, region_name=region_name,
                config=config)
            _clients[key] = client
        return client


def credentials_available() -> bool:
    """True when boto3's credential chain finds credentials (no request is sent)."""
    import boto3

    return boto3.session.Session().get_credentials() is not None


def _status(error: Exception) -> int:
    return int(getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def exists(client, bucket: str, key: str) -> bool:
    """True when the object exists; any error but 404 is raised (never read as 'absent')."""
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as error:
        if _status(error) == 404:
            return False
        raise


def put_if_absent(client, bucket: str, key: str, path: Path, content_type: str) -> bool:
    """Upload ``path`` unless the key exists; True when this call wrote it.

    ``IfNoneMatch="*"`` makes the write conditional on the server, so two writers
    racing on one key store it once; 412 (or 409 for a concurrent conditional write)
    means another writer got there first, which is fine for content-addressed keys.
    """
    from botocore.exceptions import ClientError

    try:
        with open(path, "rb") as body:
            client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type,
                              IfNoneMatch="*")
    except ClientError as error:
        if _status(error) in (409, 412):
            _log.debug("s3://%s/%s already stored", bucket, key)
            return False
        raise
    _log.debug("uploaded s3://%s/%s", bucket, key)
    return True


def download(client, bucket: str, key: str, dest: Path) -> bool:
    """Write the object to ``dest``; False when it does not exist."""
    from botocore.exceptions import ClientError

    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if _status(error) == 404:
            return False
        raise
    with open(dest, "wb") as handle:
        for chunk in response["Body"].iter_chunks(1 << 20):
            handle.write(chunk)
    return True


def presign_get(client, bucket: str, key: str, expires_s: int) -> str:
    """A GET URL for the object that stops working after ``expires_s`` seconds."""
    return client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                         ExpiresIn=int(expires_s))
