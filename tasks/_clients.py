"""The one client cache policy: an SDK client per service, endpoint and credentials.

Like prefect-aws (``AwsCredentials.get_client`` caches a client per credentials block),
each credentials block hands out one client per process for the same settings: the
Luma SDKs' (``LumaCredentials.get_client``/``get_agents_client``) and boto3's S3 client
(``_s3.client_for``). Clients are thread-safe and slow to build. The cache key never
holds a secret: credentials enter it as an HMAC under a per-process random key, so a
key that ends up in a log or a debugger cannot be checked against guessed secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["cached_client", "fingerprint"]

_FINGERPRINT_KEY = secrets.token_bytes(32)
#: (service, settings..., credentials fingerprint) -> client, for the process's lifetime.
_CACHE: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def fingerprint(*parts: str) -> str:
    """An HMAC of the parts under the per-process key: tells credentials apart, reveals nothing."""
    return hmac.new(_FINGERPRINT_KEY, "\0".join(parts).encode(), hashlib.sha256).hexdigest()


def cached_client(key: tuple, build: Callable[[], Any]) -> Any:
    """The client cached under ``key`` (no secret in it: use ``fingerprint``), built once."""
    with _LOCK:
        client = _CACHE.get(key)
        if client is None:
            client = _CACHE[key] = build()
        return client
