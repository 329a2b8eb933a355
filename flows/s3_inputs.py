"""Shot lists that live in S3: mirrored locally (with the assets beside them) before use.

A list is read with the files it references, relative to its own folder, so the whole
prefix it sits in is mirrored under REELFLOW_HOME/production/s3/<bucket>/<prefix>; the
render is written locally beside the mirrored list.
"""

from __future__ import annotations

import os
from pathlib import Path

from reelflow.config import reelflow_home
from reelflow.tasks.store import ENDPOINT_ENVS

__all__ = ["local_shotlist", "mirror_s3_prefix"]


def local_shotlist(path_or_uri: str) -> Path:
    """A local path for a shot list given as a path or an ``s3://bucket/key`` URI."""
    if not path_or_uri.startswith("s3://"):
        return Path(path_or_uri)
    folder, _, name = path_or_uri.rpartition("/")
    return mirror_s3_prefix(folder + "/") / name


def mirror_s3_prefix(uri: str) -> Path:
    """Copy every object under an s3:// prefix to REELFLOW_HOME/production/s3/<bucket>/<prefix>.

    Objects whose size and ETag match the local copy are not downloaded again; renders are
    written locally (beside the mirrored list), and fingerprints follow the objects' bytes.
    Credentials and endpoint come from boto3's usual sources (AWS_* variables, profiles).
    """
    import boto3

    bucket, _, prefix = uri[len("s3://"):].partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    root = reelflow_home() / "production" / "s3" / bucket / prefix
    endpoint = next((os.environ[n] for n in ENDPOINT_ENVS if os.environ.get(n)), None)
    client = boto3.client("s3", endpoint_url=endpoint)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            relative = obj["Key"][len(prefix):]
            if not relative or relative.endswith("/") or ".." in Path(relative).parts:
                continue  # folder markers; keys that would escape the mirror
            target = root / relative
            if target.is_file() and target.stat().st_size == obj["Size"]:
                marker = target.with_name(target.name + ".etag")
                if marker.is_file() and marker.read_text() == obj["ETag"]:
                    continue
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(target))
            target.with_name(target.name + ".etag").write_text(obj["ETag"])
    return root
