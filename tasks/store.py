"""The content-addressed clip store: media files named by their SHA-256.

Two shapes, one class:

- **local** (the default): files under REELFLOW_HOME/clips as ``<sha[:2]>/<sha><.ext>``.
- **S3** (``REELFLOW_STORE=s3://bucket/prefix``): objects at
  ``<prefix>/<sha[:2]>/<sha><.ext>``, written only if absent, with the local directory
  kept as a read-through cache, so ``path_for`` always names a local file once
  ``has`` (or ``fetch``) said yes. Endpoint from REELFLOW_S3_ENDPOINT_URL (or
  AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL); credentials from boto3's own chain, or
  given explicitly (``with_credentials``, used by ``reelflow.tasks.store_block``),
  and never stored, dumped or logged.

Prefect results stay tiny records that point here. Local keyframe images reach the
API through ``image_url_for``: a presigned GET URL from S3, or, for a local store and
a loopback emulator only, a URL served by ``reelflow.tasks._asset_server`` under the
render's own unguessable path (its ``AssetScope``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, PrivateAttr, field_validator

from reelflow.config import reelflow_home, settings
from reelflow.errors import StoreNotConfigured
from reelflow.tasks._scratch import atomic_write_path, run_dir, sweep_once
from reelflow.tasks._store_s3 import S3Side, _kind
from reelflow.tasks._verify import check, sha256_file, write_record

if TYPE_CHECKING:
    from reelflow.tasks._asset_server import AssetScope
    from reelflow.tasks.store_block import S3Credentials

__all__ = [
    "IMAGE_SUFFIXES",
    "STORE_ENV",
    "ClipStore",
    "atomic_write_path",
    "endpoint_from_env",
    "image_url_for",
    "require_remote_urls",
    "sha256_file",
]

_log = logging.getLogger("reelflow.tasks.store")

#: The environment variable that selects the store (unset: local; ``s3://bucket/prefix``: S3).
STORE_ENV = "REELFLOW_STORE"
#: Keyframe image types the Luma API accepts.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

_SHA = re.compile(r"[0-9a-f]{64}")
_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")

_S3_HINT = ("set REELFLOW_STORE=s3://bucket/prefix (plus REELFLOW_S3_ENDPOINT_URL for an "
            "S3-compatible server other than AWS) and AWS credentials (AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)")


def endpoint_from_env() -> str | None:
    """The S3-compatible endpoint the environment names (the first of REELFLOW_S3_ENDPOINT_URL,
    AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL that is set); None: AWS."""
    return settings().s3_endpoint_url


def _checked(sha256: str, suffix: str) -> tuple[str, str]:
    """Refuse anything that is not a hex hash and a short lower-case extension (no traversal)."""
    if not _SHA.fullmatch(sha256 or ""):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    if not _SUFFIX.fullmatch(suffix or ""):
        raise ValueError(f"not a file extension like '.mp4': {suffix!r}")
    return sha256, suffix


class StoreLocation(BaseModel):
    """Where an S3-backed store keeps its objects: the fields ``ClipStore`` and the saved
    ``reelflow.tasks.store_block.ClipStoreBlock`` share (defined once, here)."""

    bucket_name: str | None = Field(
        default=None, description="S3 bucket that stores the clips; empty for a local-only store.")
    bucket_folder: str = Field(
        default="", description="Key prefix inside the bucket, such as 'reelflow/clips'.")
    endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint URL (MinIO, SeaweedFS, R2); empty for AWS S3.")
    region_name: str | None = Field(
        default=None, description="S3 signing region; AWS_REGION or us-east-1 when empty.")

    @field_validator("bucket_folder")
    @classmethod
    def _strip_folder(cls, value: str) -> str:
        return value.strip("/")


class ClipStore(S3Side, StoreLocation):
    """A content-addressed store of clips and images: a local directory, optionally backed by S3.

    Its fields hold no secrets: S3 credentials come from boto3's chain when a call needs
    them, or from an explicit ``S3Credentials`` block set with ``with_credentials``, which
    lives in a private attribute: never in ``repr``, ``model_dump`` or a Prefect result.
    The S3 half (clip transfers, the access check, and the versioned-object API:
    ``read_object``, ``write_object``, ``list_objects``) is ``reelflow.tasks._store_s3``.

    Example:
        ```python
        store = ClipStore.default()            # REELFLOW_STORE=s3://bucket/prefix selects S3
        sha = store.put_file(Path("clip.mp4"))
        assert store.has(sha) and store.path_for(sha).exists()
        url = store.presigned_url(sha, suffix=".mp4", expires_s=600)
        ```
    """

    root: Path = Field(description="Local directory that holds the clips (the cache, with S3).")

    # Explicit S3 credentials (None: boto3's chain). Private, so never dumped or shown;
    # model_copy keeps it, a round trip through model_dump does not.
    _credentials: S3Credentials | None = PrivateAttr(default=None)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def default(cls) -> "ClipStore":
        """The configured store: S3 when REELFLOW_STORE=s3://bucket/prefix, else local.

        The local directory is REELFLOW_HOME/clips either way (with S3 it is the cache).
        """
        spec = settings().store_spec()
        root = reelflow_home() / "clips"
        return cls.from_url(spec, root=root) if spec else cls(root=root)

    @classmethod
    def from_url(cls, url: str, *, root: Path | None = None,
                 endpoint_url: str | None = None, region_name: str | None = None) -> "ClipStore":
        """An S3 store from ``s3://bucket/prefix``; the endpoint defaults to the environment's."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise StoreNotConfigured(f"{STORE_ENV}={url!r} is not understood: use "
                                     "s3://bucket/prefix, or unset it for the local store")
        from reelflow.tasks._s3 import bucket_name_problem

        if problem := bucket_name_problem(parts.netloc):
            raise StoreNotConfigured(f"{STORE_ENV}={url!r}: {problem}")
        endpoint = endpoint_url or endpoint_from_env()
        return cls(root=root or reelflow_home() / "clips", bucket_name=parts.netloc,
                   bucket_folder=parts.path, endpoint_url=endpoint, region_name=region_name)

    def with_credentials(self, credentials: S3Credentials | None) -> "ClipStore":
        """A copy of this store that signs S3 calls with these credentials (None: boto3's chain).

        Args:
            credentials: a ``reelflow.tasks.store_block.S3Credentials`` block; its secrets stay
                ``SecretStr`` until the boto3 client is built.

        Returns:
            A new ClipStore; this one is unchanged.
        """
        store = self.model_copy()
        store._credentials = credentials
        return store

    @property
    def is_s3(self) -> bool:
        """True when S3 is the store of record (and the local directory a cache)."""
        return bool(self.bucket_name)

    # -- naming -------------------------------------------------------------------------------

    def _resolve_path(self, sha256: str, suffix: str = ".mp4") -> Path:
        """The one place a local file name is decided."""
        _checked(sha256, suffix)
        return self.root / sha256[:2] / f"{sha256}{suffix}"

    def object_key(self, sha256: str, suffix: str = ".mp4") -> str:
        """The S3 key for a hash: ``<prefix>/<sha[:2]>/<sha><.ext>``."""
        _checked(sha256, suffix)
        name = f"{sha256[:2]}/{sha256}{suffix}"
        return f"{self.bucket_folder}/{name}" if self.bucket_folder else name

    def uri_for(self, sha256: str, suffix: str = ".mp4") -> str:
        """Where the file lives for good: ``s3://bucket/key`` or a local ``file://`` URI."""
        if self.is_s3:
            return f"s3://{self.bucket_name}/{self.object_key(sha256, suffix)}"
        return self._resolve_path(sha256, suffix).resolve().as_uri()

    def path_for(self, sha256: str, suffix: str = ".mp4") -> Path:
        """Where the file with this hash lives locally (whether or not it is there)."""
        return self._resolve_path(sha256, suffix)

    # -- reads --------------------------------------------------------------------------------

    def has(self, sha256: str, suffix: str = ".mp4", *, download: bool = True) -> bool:
        """True when the store holds the file, checked; with S3 it is then also in the local cache.

        The local file is checked against its checksum record (``reelflow.tasks._verify``:
        size and mtime, hashed when they changed); a damaged one is discarded with a
        warning and, with S3, fetched again. A damaged S3 object (not its SHA-256) reads
        as absent, with a warning: the caller fetches the clip again from its generation
        and ``put_file`` stores it over the damaged object.

        ``download=False`` only asks S3 (a HEAD) and leaves the cache alone: for planning,
        which needs to know, not to read.

        Raises:
            botocore.exceptions.ClientError: S3 failed other than "not found" (never read
                as absent: an absent clip can mean paying for it again).
        """
        sweep_once(self.root)
        target = self._resolve_path(sha256, suffix)
        if check(target, _kind(suffix), sha256=sha256):
            return True
        if not self.is_s3:
            return False
        if not download:
            return self._s3_has(sha256, suffix)
        return self._download(sha256, suffix, target)

    def fetch(self, sha256: str, suffix: str = ".mp4") -> Path:
        """The local path of a stored file, downloading it from S3 first when needed.

        Raises:
            FileNotFoundError: the store does not hold it.
        """
        if not self.has(sha256, suffix):
            raise FileNotFoundError(f"{sha256}{suffix} is not in the clip store "
                                    f"({self.uri_for(sha256, suffix)})")
        return self._resolve_path(sha256, suffix)

    # -- writes -------------------------------------------------------------------------------

    def staging_path(self, suffix: str = ".mp4") -> Path:
        """A fresh temp path in this run's folder inside the store (same filesystem), for
        downloads; a later run removes it if this one dies first."""
        return run_dir(self.root) / f"incoming-{uuid.uuid4().hex[:12]}{suffix}"

    def put_file(self, path: Path, *, suffix: str = ".mp4", keep_source: bool = False) -> str:
        """Put a file into the store under its hash (atomically) and return the hash.

        Args:
            path: The file. It is moved in, unless ``keep_source``.
            suffix: The stored extension (".mp4" for clips, the image's own for keyframes).
            keep_source: Copy instead of move (for user files such as keyframe images).

        With S3 the object is uploaded only if absent (``IfNoneMatch="*"``), and the
        local copy stays as the cache.
        """
        path = Path(path)
        sha = sha256_file(path)
        target = self._resolve_path(sha, suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        sweep_once(self.root)
        if check(target, _kind(suffix), sha256=sha):  # a damaged copy is replaced
            if not keep_source:
                path.unlink()
        elif keep_source:
            staging = self.staging_path(suffix)
            try:
                shutil.copyfile(path, staging)
                write_record(target, staging, sha256=sha)
                os.replace(staging, target)
            finally:
                staging.unlink(missing_ok=True)
        else:
            write_record(target, path, sha256=sha)
            os.replace(path, target)
        if self.is_s3:
            self._upload(sha, suffix, target)
        return sha

    # -- URLs the API can fetch -----------------------------------------------------------------

    def presigned_url(self, sha256: str, *, suffix: str = ".mp4", expires_s: int = 3600,
                      assets: AssetScope | None = None) -> str:
        """A URL that GETs the stored file: presigned (expiring) on S3, loopback when local.

        A local store's file is served only once registered in a render's ``assets`` scope
        (``reelflow.tasks._asset_server``), under that render's unguessable path, and only
        reachable from this machine; see ``require_remote_urls``.

        Raises:
            FileNotFoundError: a local store does not hold the file.
            ValueError: a local store, and no ``assets`` scope to serve the file in.
        """
        if self.is_s3:
            from reelflow.tasks import _s3

            return _s3.presign_get(self._client(), self.bucket_name,
                                   self.object_key(sha256, suffix), expires_s)
        path = self._resolve_path(sha256, suffix)
        if not path.is_file():
            raise FileNotFoundError(f"{sha256}{suffix} is not in the clip store {self.root}")
        if assets is None:
            raise ValueError("a local store's files reach the API only through a render's "
                             "AssetScope (reelflow.tasks._asset_server.asset_scope)")
        return assets.url_for(path, f"{sha256}{suffix}")

    def require_remote_urls(self, loopback_ok: bool = False) -> None:
        """Check, before any spend, that local images can be turned into fetchable URLs.

        Args:
            loopback_ok: The API runs on this machine (embedded or loopback emulator),
                so a loopback URL will do.

        Raises:
            StoreNotConfigured: the store is local and the API is remote, or S3 is
                selected but no AWS credentials are found; the message says what to set.
        """
        if self.is_s3:
            from reelflow.tasks import _s3

            if not _s3.credentials_available(self._credentials):
                raise StoreNotConfigured(
                    f"{STORE_ENV} selects s3://{self.bucket_name} but no AWS credentials were "
                    "found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)")
            return
        if not loopback_ok:
            raise StoreNotConfigured(
                "local keyframe images must reach the Luma API by URL, and the clip store is "
                f"local ({self.root}): {_S3_HINT}; or give the keyframe as an https:// URL")

    def image_url_for(self, path: Path, *, loopback_ok: bool = False, expires_s: int = 3600,
                      assets: AssetScope | None = None) -> str:
        """Put a local PNG/JPEG/WebP into the store (keeping its extension) and return a URL for it.

        A presigned S3 URL, or with a local store and ``loopback_ok`` the asset server's URL
        in the render's ``assets`` scope.

        Raises:
            StoreNotConfigured: see ``require_remote_urls``.
            ValueError: not a PNG, JPEG or WebP file name.
        """
        self.require_remote_urls(loopback_ok)
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in IMAGE_SUFFIXES:
            raise ValueError(f"{path}: keyframe images must be one of {', '.join(IMAGE_SUFFIXES)}")
        sha = self.put_file(path, suffix=suffix, keep_source=True)
        return self.presigned_url(sha, suffix=suffix, expires_s=expires_s, assets=assets)


def require_remote_urls(loopback_ok: bool = False, *, store: ClipStore | None = None) -> None:
    """``ClipStore.require_remote_urls`` on the configured store (see there)."""
    (store or ClipStore.default()).require_remote_urls(loopback_ok)


def image_url_for(path: Path, *, loopback_ok: bool = False, store: ClipStore | None = None,
                  expires_s: int = 3600, assets: AssetScope | None = None) -> str:
    """``ClipStore.image_url_for`` on the configured store (see there)."""
    return (store or ClipStore.default()).image_url_for(path, loopback_ok=loopback_ok,
                                                        expires_s=expires_s, assets=assets)
