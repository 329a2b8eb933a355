"""The clip store as a Prefect block: a local directory, or an S3 bucket/prefix with credentials.

``ClipStoreBlock`` is the saved, named form of ``reelflow.tasks.store.ClipStore``.
Flows take a block name (``store_from_block``); without one, the environment
(REELFLOW_STORE, REELFLOW_S3_ENDPOINT_URL, boto3's credential chain) stays the
zero-config default. The block's secrets stay ``SecretStr`` into the store's private
credentials and are unwrapped only where the boto3 client is built.

Register it with ``prefect block register -m reelflow.tasks.store_block``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, model_validator

from reelflow.config import reelflow_home
from reelflow.tasks._s3 import S3Credentials
from reelflow.tasks.store import ClipStore

__all__ = ["ClipStoreBlock", "store_from_block"]

_log = logging.getLogger("reelflow.tasks.store_block")


class ClipStoreBlock(Block):
    """Where reelflow keeps generated clips: a local directory, or an S3 bucket and prefix.

    With ``bucket_name`` set, S3 is the store of record and ``root`` its local cache.
    The AWS keys are optional: without them boto3's default chain (AWS_* environment,
    profile, instance role) signs the requests.

    Example:
        ```python
        from reelflow.tasks.store_block import ClipStoreBlock
        store = ClipStoreBlock.load("BLOCK_NAME")
        clip_store = store.get_store()
        ```
    """

    _block_type_name = "Clip Store"
    _documentation_url = "https://docs.prefect.io/v3/concepts/blocks"  # type: ignore[assignment]

    root: str | None = Field(
        default=None,
        description="Local directory for clips (the cache, with S3); "
                    "REELFLOW_HOME/clips when empty.")
    bucket_name: str | None = Field(
        default=None, description="S3 bucket that stores the clips; empty for a local-only store.")
    bucket_folder: str = Field(
        default="", description="Key prefix inside the bucket, such as 'reelflow/clips'.")
    endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint URL (MinIO, SeaweedFS, R2); empty for AWS S3.")
    region_name: str | None = Field(
        default=None, description="S3 signing region; AWS_REGION or us-east-1 when empty.")
    aws_access_key_id: SecretStr | None = Field(
        default=None, description="AWS access key id; boto3's default chain when empty.")
    aws_secret_access_key: SecretStr | None = Field(
        default=None, description="AWS secret access key; boto3's default chain when empty.")

    @model_validator(mode="after")
    def _keys_come_in_pairs(self) -> "ClipStoreBlock":
        """Half a key pair would silently fall back to another identity: refuse it."""
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError("give both aws_access_key_id and aws_secret_access_key, or neither "
                             "(then boto3's default credential chain is used)")
        if (self.aws_access_key_id or self.endpoint_url or self.region_name) \
                and not self.bucket_name:
            raise ValueError("S3 settings are given but bucket_name is empty: set bucket_name, "
                             "or clear the S3 settings for a local store")
        return self

    def _credentials(self) -> S3Credentials | None:
        if self.aws_access_key_id is None or self.aws_secret_access_key is None:
            return None
        return S3Credentials(access_key_id=self.aws_access_key_id,
                             secret_access_key=self.aws_secret_access_key)

    def get_store(self) -> ClipStore:
        """The ``ClipStore`` this block describes, signing S3 calls with the block's keys.

        The keys go into the store's private credentials (never its dump or repr);
        S3 clients are cached per endpoint, region and credentials, so repeated calls
        share one client.

        Returns:
            A ClipStore: local under ``root``, or S3 with ``root`` as the cache.

        Example:
            ```python
            from reelflow.tasks.store_block import ClipStoreBlock
            store = ClipStoreBlock.load("BLOCK_NAME").get_store()
            sha = store.put_file(Path("clip.mp4"), keep_source=True)
            ```
        """
        root = Path(self.root).expanduser() if self.root else reelflow_home() / "clips"
        store = ClipStore(root=root, bucket_name=self.bucket_name or None,
                          bucket_folder=self.bucket_folder or "", endpoint_url=self.endpoint_url,
                          region_name=self.region_name)
        _log.debug("Clip store %s (%s)", store.bucket_name or store.root,
                   "block credentials" if self.aws_access_key_id else "default chain")
        return store.with_credentials(self._credentials())


def store_from_block(name: str | None) -> ClipStore:
    """The clip store for a run: the saved ``ClipStoreBlock`` ``name``, else the environment's.

    Args:
        name: A saved block's name; None (or empty) for ``ClipStore.default()``.

    Returns:
        A ClipStore.

    Raises:
        ValueError: no block of that name is saved (Prefect's message).

    Example:
        ```python
        from reelflow.tasks.store_block import store_from_block
        store = store_from_block("BLOCK_NAME")   # store_from_block(None): REELFLOW_STORE
        ```
    """
    if not name:
        return ClipStore.default()
    _log.debug("Loading clip store block %s", name)
    return ClipStoreBlock.load(name).get_store()
