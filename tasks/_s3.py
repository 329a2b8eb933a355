"""The few S3 calls the clip store makes, over boto3, with clients made lazily.

boto3 is imported only when an S3 store is used, and one client is kept per
(endpoint, region, credential source) by the one client cache policy
(``reelflow.tasks._clients``). Credentials come from boto3's own chain (AWS_*
environment, profile, instance role), or explicitly as an ``S3Credentials`` block
(``reelflow.tasks.store_block``, nested in a ``ClipStoreBlock``), whose secrets stay
``SecretStr`` until the boto3 call. Nothing here logs or stores them, and the client
cache is keyed by a keyed hash, never by the secret itself.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from reelflow.config import settings
from reelflow.errors import WriteConflict
from reelflow.tasks._clients import cached_client, fingerprint

if TYPE_CHECKING:
    from reelflow.tasks.store_block import S3Credentials

__all__ = [
    "bucket_name_problem",
    "check_access",
    "client_for",
    "credentials_available",
    "describe",
    "download",
    "exists",
    "list_keys",
    "presign_get",
    "put_if_absent",
    "put_over",
    "read_versioned",
    "region",
    "status_of",
    "write_if",
]

_log = logging.getLogger("reelflow.tasks._s3")

#: Used for signing when neither the store nor the environment names a region.
DEFAULT_REGION = "us-east-1"


def region(explicit: str | None = None) -> str:
    """The signing region: the store's, else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1."""
    return explicit or settings().aws_region or DEFAULT_REGION


def _credential_fingerprint(credentials: S3Credentials | None = None) -> str:
    """Tell credential sources apart without keeping any secret in the cache key."""
    if credentials is not None:
        return credentials.fingerprint()
    return fingerprint("chain", *settings().aws_chain_parts())


def client_for(endpoint_url: str | None, region_name: str | None = None,
               credentials: S3Credentials | None = None):
    """The S3 client for these settings, built on first use and then reused.

    Args:
        endpoint_url: An S3-compatible endpoint; None for AWS.
        region_name: The signing region; see ``region``.
        credentials: Explicit credentials; None for boto3's default chain.
    """
    region_name = region(region_name)

    def build():
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
        # the only place explicit secrets are unwrapped: straight into boto3
        session = boto3.session.Session(**(credentials.boto3_kwargs() if credentials else {}))
        return session.client("s3", endpoint_url=endpoint_url, region_name=region_name,
                              config=config)

    return cached_client(("s3", endpoint_url, region_name, _credential_fingerprint(credentials)),
                         build)


def credentials_available(credentials: S3Credentials | None = None) -> bool:
    """True when credentials are given, or boto3's chain finds some (no request is sent)."""
    if credentials is not None:
        return True
    import boto3

    return boto3.session.Session().get_credentials() is not None


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid S3 bucket name (AWS's general-purpose naming rules, which
    S3-compatible servers share), or None. Checked before any call: botocore accepts names
    such as ``My_Bucket`` and the failure would come only from the server, mid-render."""
    if not _BUCKET.fullmatch(name):
        return ("a bucket name has 3 to 63 characters: lowercase letters, digits, '.' and '-', "
                "starting and ending with a letter or digit")
    if ".." in name or ".-" in name or "-." in name:
        return "a bucket name cannot have '..', '.-' or '-.'"
    try:
        ipaddress.IPv4Address(name)
        return "a bucket name cannot look like an IP address"
    except ValueError:
        pass
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3", "--x-s3")):
        return "a bucket name cannot start with 'xn--' or 'sthree-', or end with '-s3alias' or '--ol-s3'"
    return None


def describe(error: Exception) -> str:
    """One line for a botocore error: the server's code and message, or the client's reason.

    Never a secret: botocore's messages name the operation and the server's text, and a
    ``SignatureDoesNotMatch`` answer's string-to-sign is not part of them.
    """
    info = getattr(error, "response", {}).get("Error", {})
    code, message = info.get("Code"), info.get("Message")
    hint = {"SignatureDoesNotMatch": "the secret access key is wrong",
            "InvalidAccessKeyId": "the access key id is not known to the server",
            "AccessDenied": "these credentials may not list the bucket",
            "NoSuchBucket": "the bucket does not exist",
            "403": "access denied (wrong credentials, or no permission)",
            "404": "the bucket does not exist"}.get(str(code))
    if code:
        text = f"{code}: {hint}" if hint else f"{code}: {message or ''}"
    else:
        text = str(error)
    return " ".join(text.split())[:300]


def check_access(client, bucket: str, prefix: str) -> None:
    """One cheap call (LIST, at most one key) that proves the bucket exists and these
    credentials can read it; raises the botocore error otherwise (see ``describe``)."""
    client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)


def status_of(error: Exception) -> int:
    """The HTTP status of a botocore ClientError (0 when there was no answer)."""
    return int(getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def exists(client, bucket: str, key: str) -> bool:
    """True when the object exists; any error but 404 is raised (never read as 'absent')."""
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as error:
        if status_of(error) == 404:
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
        if status_of(error) in (409, 412):
            _log.debug("s3://%s/%s already stored", bucket, key)
            return False
        raise
    _log.debug("uploaded s3://%s/%s", bucket, key)
    return True


def _get_object(client, bucket: str, key: str) -> dict | None:
    """GET the object; None when it does not exist (any other error is raised)."""
    from botocore.exceptions import ClientError

    try:
        return client.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if status_of(error) == 404:
            return None
        raise


def download(client, bucket: str, key: str, dest: Path) -> bool:
    """Write the object to ``dest``; False when it does not exist."""
    response = _get_object(client, bucket, key)
    if response is None:
        return False
    with open(dest, "wb") as handle:
        for chunk in response["Body"].iter_chunks(1 << 20):
            handle.write(chunk)
    return True


def put_over(client, bucket: str, key: str, path: Path, content_type: str) -> None:
    """Upload ``path`` whether or not the key exists (to replace a damaged object)."""
    with open(path, "rb") as body:
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    _log.debug("replaced s3://%s/%s", bucket, key)


def presign_get(client, bucket: str, key: str, expires_s: int) -> str:
    """A GET URL for the object that stops working after ``expires_s`` seconds."""
    return client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                         ExpiresIn=int(expires_s))


def read_versioned(client, bucket: str, key: str) -> tuple[bytes, str] | None:
    """The object's bytes and ETag, or None when it does not exist."""
    response = _get_object(client, bucket, key)
    return None if response is None else (response["Body"].read(), response["ETag"])


def write_if(client, bucket: str, key: str, body: bytes, etag: str | None) -> str:
    """Write ``body`` only if the object is still at ``etag`` (None: still absent).

    Compare-and-swap on S3's conditional PUT (``If-Match`` / ``If-None-Match``): of two
    writers that read the same version, one wins and the other gets ``WriteConflict``.

    Returns:
        The new ETag.
    """
    from botocore.exceptions import ClientError

    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    try:
        response = client.put_object(Bucket=bucket, Key=key, Body=body,
                                     ContentType="application/json", **condition)
    except ClientError as error:
        if status_of(error) in (409, 412):
            raise WriteConflict(f"s3://{bucket}/{key} changed since it was read") from None
        raise
    return response["ETag"]


def list_keys(client, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix``."""
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [obj["Key"] for obj in page.get("Contents", [])]
    return keys
