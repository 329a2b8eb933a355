"""The clip store as Prefect blocks, in prefect-aws's shape: a store block nesting its credentials.

``ClipStoreBlock`` is the saved, named form of ``reelflow.tasks.store.ClipStore``: it has
the store's own location fields (``StoreLocation``, defined once) and nests an
``S3Credentials`` block, as prefect-aws's ``S3Bucket`` nests ``AwsCredentials``. Flows take
a block name (``store_from_block``); without one, the environment (REELFLOW_STORE,
REELFLOW_S3_ENDPOINT_URL, boto3's credential chain) stays the zero-config default. The
keys stay ``SecretStr`` into the store's private credentials and are unwrapped only where
the boto3 client is built.

Blocks saved in the old flat shape (``aws_access_key_id``/``aws_secret_access_key`` on the
store block itself) still load: the keys move into the nested credentials as they are read.

Register both with ``prefect block register -m reelflow.tasks.store_block``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect.blocks.abstract import CredentialsBlock
from prefect.blocks.core import Block
from pydantic import Field, SecretStr, model_validator

from reelflow.config import reelflow_home
from reelflow.tasks._clients import fingerprint
from reelflow.tasks.store import ClipStore, StoreLocation

__all__ = ["ClipStoreBlock", "S3Credentials", "store_from_block"]

_log = logging.getLogger("reelflow.tasks.store_block")

#: The flat key fields of blocks saved before the credentials were nested.
_FLAT_KEYS = ("aws_access_key_id", "aws_secret_access_key")


class S3Credentials(CredentialsBlock):
    """An S3 key pair (AWS or an S3-compatible server), in place of boto3's default chain.

    Every value is a ``SecretStr``: masked in repr, str, logs and dumps, unwrapped only
    where the boto3 session is made (``boto3_kwargs``).

    Example:
        ```python
        from reelflow.tasks.store_block import S3Credentials
        credentials = S3Credentials.load("BLOCK_NAME")
        s3 = credentials.get_client(endpoint_url="http://127.0.0.1:8333")
        ```
    """

    _block_type_name = "S3 Credentials"
    _documentation_url = "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_access-keys.html"  # type: ignore[assignment]

    aws_access_key_id: SecretStr = Field(description="The access key id.")
    aws_secret_access_key: SecretStr = Field(description="The secret access key.")
    aws_session_token: SecretStr | None = Field(
        default=None, description="A session token, for temporary credentials.")

    def fingerprint(self) -> str:
        """Tell these credentials apart from others without exposing them (a keyed HMAC)."""
        return fingerprint("explicit", self.aws_access_key_id.get_secret_value(),
                           self.aws_secret_access_key.get_secret_value(),
                           self.aws_session_token.get_secret_value() if self.aws_session_token else "")

    def boto3_kwargs(self) -> dict[str, str | None]:
        """The unwrapped keyword arguments for ``boto3.session.Session``: only for that call."""
        return {"aws_access_key_id": self.aws_access_key_id.get_secret_value(),
                "aws_secret_access_key": self.aws_secret_access_key.get_secret_value(),
                "aws_session_token": (self.aws_session_token.get_secret_value()
                                      if self.aws_session_token else None)}

    def get_client(self, endpoint_url: str | None = None, region_name: str | None = None):
        """The boto3 S3 client these credentials sign with, cached per credentials."""
        from reelflow.tasks import _s3

        return _s3.client_for(endpoint_url, region_name, self)


class ClipStoreBlock(Block, StoreLocation):
    """Where reelflow keeps generated clips: a local directory, or an S3 bucket and prefix.

    With ``bucket_name`` set, S3 is the store of record and ``root`` its local cache.
    ``credentials`` is optional: without it boto3's default chain (AWS_* environment,
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
    credentials: S3Credentials | None = Field(
        default=None, description="The S3 keys; boto3's default chain when empty.")

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_keys(cls, data: Any) -> Any:
        """A block saved in the old flat shape: its key pair becomes the nested credentials.

        Half a key pair would silently fall back to another identity: refuse it.
        """
        if not isinstance(data, dict) or not any(name in data for name in _FLAT_KEYS):
            return data
        data = dict(data)
        keys = {name: data.pop(name, None) for name in _FLAT_KEYS}
        if (keys["aws_access_key_id"] is None) != (keys["aws_secret_access_key"] is None):
            raise ValueError("give both aws_access_key_id and aws_secret_access_key, or neither "
                             "(then boto3's default credential chain is used)")
        if keys["aws_access_key_id"] is not None and data.get("credentials") is None:
            data["credentials"] = keys
        return data

    @model_validator(mode="after")
    def _s3_settings_need_a_bucket(self) -> "ClipStoreBlock":
        if (self.credentials or self.endpoint_url or self.region_name) and not self.bucket_name:
            raise ValueError("S3 settings are given but bucket_name is empty: set bucket_name, "
                             "or clear the S3 settings for a local store")
        return self

    def get_store(self) -> ClipStore:
        """The ``ClipStore`` this block describes, signing S3 calls with the block's credentials.

        The credentials go into the store's private attribute (never its dump or repr);
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
        store = ClipStore(root=root, **{name: getattr(self, name) for name in StoreLocation.model_fields})
        _log.debug("Clip store %s (%s)", store.bucket_name or store.root,
                   "block credentials" if self.credentials else "default chain")
        return store.with_credentials(self.credentials)


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
