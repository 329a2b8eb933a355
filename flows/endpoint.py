"""Which Luma endpoint a run talks to: the real API with a key, else the embedded emulator."""

from __future__ import annotations

import functools
import logging
import os
import threading

from reelflow.config import reelflow_home

__all__ = ["EMULATOR_TOKEN", "luma_credentials"]

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


def image_url_resolver(plan, store=None):
    """How local keyframe images reach the API, checked before any spend.

    With S3 configured: presigned URLs. With the embedded or a loopback emulator and a
    local store: the store's loopback asset server. With the real API and no S3 store:
    StoreNotConfigured, saying what to set.
    """
    from reelflow.flows.plan import local_images
    from reelflow.tasks.store import ClipStore

    if not local_images(plan):
        return None
    loopback_ok = not os.environ.get("LUMAAI_API_KEY") or _is_loopback(os.environ.get("LUMAAI_BASE_URL"))
    store = store or ClipStore.default()
    store.require_remote_urls(loopback_ok=loopback_ok)
    return functools.partial(store.image_url_for, loopback_ok=loopback_ok)


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
