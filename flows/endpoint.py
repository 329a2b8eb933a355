"""Which Luma endpoint a run talks to: the real API with a key, else the embedded emulator."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelflow.config import reelflow_home

__all__ = ["EMULATOR_TOKEN", "ImageUrls", "image_url_resolver", "luma_credentials"]

#: The bearer token the embedded emulator accepts; not a secret.
EMULATOR_TOKEN = "reelflow-emulator"

_log = logging.getLogger("reelflow.flows.endpoint")
# One embedded emulator per process and data dir: the process-wide service, like a
# connection pool, started on first need and reused by every later run.
_embedded: dict[str, object] = {}
_embedded_lock = threading.Lock()


def _embedded_emulator_url() -> tuple[str, bool]:
    """Start (once per process) the emulator whose account lives under REELFLOW_HOME."""
    from reelflow.emulator import Emulator

    data = str(reelflow_home() / "emulator")
    with _embedded_lock:
        if data in _embedded:
            return _embedded[data].base_url, False
        latency = float(os.environ.get("REELFLOW_EMULATOR_LATENCY", "2"))
        emulator = Emulator(data, latency=latency)
        emulator.start()
        _embedded[data] = emulator
        return emulator.base_url, True


def luma_credentials(announce=None, block: str | None = None):
    """Credentials for this run.

    A saved ``LumaCredentials`` block named ``block`` wins. With LUMAAI_API_KEY set, the SDK's own environment (key and optional
    LUMAAI_BASE_URL) is used unchanged. Without it, the embedded emulator is
    started and ``announce`` (if given) is called once with a one-line notice.
    """
    from reelflow.tasks.luma import LumaCredentials

    if block:
        return LumaCredentials.load(block)
    if os.environ.get("LUMAAI_API_KEY"):
        return LumaCredentials.from_env()
    url, started = _embedded_emulator_url()
    if started:
        message = (f"No LUMAAI_API_KEY set: using reelflow's built-in Luma emulator at {url} "
                   "(synthetic clips, nothing billed).")
        (announce or _log.info)(message)
    from pydantic import SecretStr

    return LumaCredentials(api_key=SecretStr(EMULATOR_TOKEN), base_url=url)


def _is_loopback(url: str | None) -> bool:
    from urllib.parse import urlsplit

    return (urlsplit(url or "").hostname or "") in ("127.0.0.1", "localhost", "::1")


@dataclass
class ImageUrls:
    """Turns a render's local keyframe images into URLs the API can fetch.

    With a local store the files are served by the loopback asset server in this
    render's own scope (``assets``), under an unguessable path; ``close`` stops serving
    them once the render's generations are done.
    """

    store: Any
    loopback_ok: bool
    assets: Any = None

    def __call__(self, path: Path) -> str:
        return self.store.image_url_for(path, loopback_ok=self.loopback_ok, assets=self.assets)

    def close(self) -> None:
        """Stop serving this render's files (idempotent; nothing to do with S3)."""
        if self.assets is not None:
            self.assets.close()


def image_url_resolver(plan, store=None) -> ImageUrls | None:
    """How local keyframe images reach the API, checked before any spend.

    With S3 configured: presigned URLs. With the embedded or a loopback emulator and a
    local store: the loopback asset server, in a scope of this render's own. With the
    real API and no S3 store: StoreNotConfigured, saying what to set.
    """
    from reelflow.flows.plan import local_images
    from reelflow.tasks.store import ClipStore

    if not local_images(plan):
        return None
    loopback_ok = not os.environ.get("LUMAAI_API_KEY") or _is_loopback(os.environ.get("LUMAAI_BASE_URL"))
    store = store or ClipStore.default()
    store.require_remote_urls(loopback_ok=loopback_ok)
    if store.is_s3:
        return ImageUrls(store, loopback_ok)
    from reelflow.tasks._asset_server import asset_scope

    return ImageUrls(store, loopback_ok, asset_scope())


def check_credits(credentials, to_spend_usd: float) -> float | None:
    """Before any spend: the account's credit balance where the API offers it.

    Raises GenerationFailed when there is something to pay for and the balance is
    empty. Credits are the API's own unit (not USD), so only an empty balance is
    refused; the balance is returned for the log.
    """
    import lumaai

    from reelflow.errors import GenerationFailed

    if to_spend_usd <= 0:
        return None
    try:
        balance = credentials.get_client().credits.get().credit_balance
    except lumaai.APIError as exc:  # not offered, or not reachable now: the creates will tell
        _log.info("credit balance not available (%s)", type(exc).__name__)
        return None
    if balance is not None and balance <= 0:
        raise GenerationFailed(f"the Luma account has no credits left (balance {balance}); "
                               f"this render would pay about ${to_spend_usd:.2f}. Nothing was submitted.")
    return balance
