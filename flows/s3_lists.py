"""Shot lists that live in S3: mirrored locally before use, results published back.

A list is read with the files it references, relative to its own folder, so the whole
prefix it sits in is mirrored under REELFLOW_HOME/production/s3/<bucket>/<prefix>. The
render is made locally beside the mirrored list; once it is whole, the video and its
deliverables are uploaded to the same place beside the list in S3, so a scheduled
production from a bucket leaves its results in that bucket.

    s3://b/p/promo.yaml ─mirror─▶ ~/.reelflow/production/s3/b/p/promo.yaml ─render─▶
    ~/.reelflow/production/s3/b/p/promo.mp4 ─publish─▶ s3://b/p/promo.mp4
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path

from prefect import task

from reelflow.config import s3_mirror_root
from reelflow.errors import ShotListError
from reelflow.tasks import _s3
from reelflow.tasks.store import endpoint_from_env

__all__ = ["local_shotlist", "mirror_s3_prefix", "presigned_link", "publish_to_origin",
           "s3_origin", "uri_problem"]

#: How long the output link in the summary works: SigV4's longest, seven days.
LINK_EXPIRES_S = 7 * 24 * 3600


def _client():
    # credentials and endpoint from boto3's usual sources (AWS_* variables, profiles)
    return _s3.client_for(endpoint_from_env())


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def uri_problem(uri: str) -> str | None:
    """Why an ``s3://bucket/key`` URI cannot be mirrored, or None: a bad bucket name, or a
    ``.``/``..`` segment in the key (its mirror would land outside the bucket's folder)."""
    bucket, key = _split(uri)
    if problem := _s3.bucket_name_problem(bucket):
        return problem
    if any(part in (".", "..") for part in key.split("/")):
        return "'.' and '..' are not allowed in the key: write the object's own key"
    return None


def local_shotlist(path_or_uri: str) -> Path:
    """A local path for a shot list given as a path or an ``s3://bucket/key`` URI.

    Raises:
        ShotListError: the URI's folder cannot be read from S3 (one line, with the reason).
    """
    if not path_or_uri.startswith("s3://"):
        return Path(path_or_uri)
    from botocore.exceptions import BotoCoreError, ClientError

    folder, _, name = path_or_uri.rpartition("/")
    if problem := uri_problem(path_or_uri):
        raise ShotListError([f"{path_or_uri}: {problem}"])
    try:
        return mirror_s3_prefix(folder + "/") / name
    except ClientError as error:
        reason = error.response.get("Error", {}).get("Message") or _s3.describe(error)
    except BotoCoreError as error:
        reason = _s3.describe(error)
    raise ShotListError([f"{path_or_uri}: cannot be read from S3: {reason}"])


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".etag")


def mirror_s3_prefix(uri: str) -> Path:
    """Copy every object under an s3:// prefix to REELFLOW_HOME/production/s3/<bucket>/<prefix>.

    Objects whose size and ETag match the local copy are not downloaded again (outputs
    published from here included); each download lands under a temporary name and is
    renamed into place, so an interrupted mirror never leaves a half file behind.

    Raises:
        ShotListError: the URI's bucket name is invalid or its key has '.'/'..' segments.
    """
    if problem := uri_problem(uri):
        raise ShotListError([f"{uri}: {problem}"])
    bucket, prefix = _split(uri)
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    root = s3_mirror_root() / bucket / prefix
    client = _client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            relative = obj["Key"][len(prefix):]
            if not relative or relative.endswith("/") or ".." in Path(relative).parts:
                continue  # folder markers; keys that would escape the mirror
            target = root / relative
            if (target.is_file() and target.stat().st_size == obj["Size"]
                    and _marker(target).is_file() and _marker(target).read_text() == obj["ETag"]):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{os.getpid()}.part")
            client.download_file(bucket, obj["Key"], str(partial))
            os.replace(partial, target)
            _marker(target).write_text(obj["ETag"])
    return root


def s3_origin(path: Path) -> str | None:
    """The ``s3://bucket/key`` a path inside the S3 mirror stands for; None elsewhere."""
    try:
        relative = Path(path).resolve().relative_to(s3_mirror_root().resolve())
    except ValueError:
        return None
    return f"s3://{relative.as_posix()}" if len(relative.parts) >= 2 else None


@task(name="publish", persist_result=False)
def publish_to_origin(paths: list[Path]) -> dict[str, str]:
    """Upload each file that sits in the S3 mirror to its place in S3 (beside its list).

    Files outside the mirror (a local list, or ``--out`` elsewhere) are left alone. An S3
    PUT is atomic: readers see the previous object or the whole new one. The local copy's
    ETag marker is written so the next mirror does not download the file back.

    Returns:
        ``{local path: s3:// URI}`` for every file uploaded.
    """
    published = {}
    for path in paths:
        uri = s3_origin(path)
        if uri is None or not Path(path).is_file():
            continue
        bucket, key = _split(uri)
        client = _client()
        content_type = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
        client.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type})
        _marker(Path(path)).write_text(client.head_object(Bucket=bucket, Key=key)["ETag"])
        published[str(path)] = uri
    return published


def presigned_link(uri: str) -> str:
    """A GET URL for an s3:// object that works for LINK_EXPIRES_S seconds.

    Like any presigned URL it names the access key id (never the secret key).
    """
    bucket, key = _split(uri)
    return _s3.presign_get(_client(), bucket, key, LINK_EXPIRES_S)
