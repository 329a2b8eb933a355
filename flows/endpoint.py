"""Which Luma endpoints a run talks to: the real APIs with keys, else the embedded emulator.

Two APIs, two keys: LUMAAI_API_KEY (Dream Machine API: ray-2, ray-flash-2; base URL
LUMAAI_BASE_URL) and LUMA_AGENTS_API_KEY (Agents API: ray-3.2; base URL LUMA_BASE_URL).
With neither key the embedded emulator serves both. With one key set, a list that needs
the other API is refused before any spend (``check_credentials``), naming the variable.

The credentials decide the rest: a saved ``LumaCredentials`` block (``--luma-block``) or
the environment's. Whether local keyframe images may be served on loopback
(``api_is_local``) follows the Dream Machine base URL of the credentials in use, never
the environment when a block is given.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelflow.config import reelflow_home, settings

__all__ = ["EMULATOR_TOKEN", "ImageUrls", "account_balance", "api_is_local", "check_credentials",
           "check_credits",
           "credits_text", "image_url_resolver", "luma_credentials"]

#: The environment variables holding each API's key.
KEY_VARIABLES = {"dream-machine": "LUMAAI_API_KEY", "agents": "LUMA_AGENTS_API_KEY"}

#: The bearer token the embedded emulator accepts; not a secret.
EMULATOR_TOKEN = "reelflow-emulator"

_log = logging.getLogger("reelflow.flows.endpoint")
# One embedded emulator per process and data dir: the process-wide service, like a
# connection pool, started on first need and reused by every later run.
_embedded: dict[str, object] = {}
_embedded_lock = threading.Lock()


def agents_url(emulator) -> str:
    """The Agents API base URL of an emulator (it serves both APIs on one port)."""
    return getattr(emulator, "agents_base_url", None) or f"{emulator.base_url}/v1"


def _embedded_emulator():
    """Start (once per process) the emulator whose account lives under REELFLOW_HOME;
    returns it and whether this call started it."""
    from reelflow.emulator import Emulator

    data = str(reelflow_home() / "emulator")
    with _embedded_lock:
        if data in _embedded:
            return _embedded[data], False
        latency = settings().emulator_latency_s()
        emulator = Emulator(data, latency=latency)
        emulator.start()
        _embedded[data] = emulator
        return emulator, True


def _has_key() -> bool:
    return settings().has_luma_key()


def luma_credentials(announce=None, block: str | None = None):
    """Credentials for this run (both APIs).

    A saved ``LumaCredentials`` block named ``block`` wins. With LUMAAI_API_KEY or
    LUMA_AGENTS_API_KEY set, the SDKs' own environment (keys and optional base URLs) is
    used unchanged. With neither, the embedded emulator is started for both APIs and
    ``announce`` (if given) is called once with a one-line notice.
    """
    from reelflow.tasks.luma import LumaCredentials

    if block:
        return LumaCredentials.load(block)
    if _has_key():
        return LumaCredentials.from_env()
    emulator, started = _embedded_emulator()
    if started:
        message = (f"No LUMAAI_API_KEY or LUMA_AGENTS_API_KEY set: using reelflow's built-in Luma "
                   f"emulator at {emulator.base_url} for both APIs (synthetic clips, nothing billed).")
        (announce or _log.info)(message)
    from pydantic import SecretStr

    token = SecretStr(EMULATOR_TOKEN)
    return LumaCredentials(api_key=token, base_url=emulator.base_url, agents_api_key=token,
                           agents_base_url=agents_url(emulator))


def check_credentials(plan, credentials=None) -> None:
    """Before any spend: every API the shots still to generate need has a key.

    ``credentials`` (a LumaCredentials block) is checked when given; else the
    environment, where no key at all means the embedded emulator serves both APIs.

    Raises:
        CredentialsMissing: naming the variable to set.
    """
    from reelflow.errors import CredentialsMissing

    needed = {still.request.api: f"still {still.label}" for still in plan.stills
              if still.status != "cached"}
    needed |= {shot.request.api: f"shot {shot.id}" for shot in plan.shots
               if shot.request is not None and shot.status != "cached"}
    for api, what in sorted(needed.items()):
        if credentials is not None:
            key = credentials.agents_api_key if api == "agents" else credentials.api_key
            missing = key is None
        else:
            env = settings()
            missing = _has_key() and not (env.agents_api_key if api == "agents" else env.luma_api_key)
        if missing:
            models = "ray-3.2 and uni-1" if api == "agents" else "ray-2 and ray-flash-2"
            field = "agents_api_key" if api == "agents" else "api_key"
            variable = KEY_VARIABLES[api] if credentials is None else \
                f"{KEY_VARIABLES[api]} (the credentials block's {field})"
            raise CredentialsMissing(
                f"{plan.source.name}: {what} needs the Luma {models} API, but "
                f"{variable} is not set; set it (nothing was submitted)")


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


def api_is_local(credentials=None) -> bool:
    """True when the Dream Machine API of ``credentials`` runs on this machine (the embedded
    or a loopback emulator), so a loopback URL reaches it.

    The credentials decide: their ``base_url`` (None is the real API). Without credentials,
    those the environment gives (``luma_credentials``): no key at all is the embedded
    emulator; a key is the real API unless LUMAAI_BASE_URL is a loopback address.
    """
    if credentials is not None:
        return _is_loopback(credentials.base_url)
    return not _has_key() or _is_loopback(settings().luma_base_url)


def image_url_resolver(plan, store=None, credentials=None) -> ImageUrls | None:
    """How local keyframe images reach the API, checked before any spend.

    Dream Machine API only (the Agents API takes local inputs through its Files API).
    With S3 configured: presigned URLs. With the embedded or a loopback emulator and a
    local store: the loopback asset server, in a scope of this render's own. With the
    real API and no S3 store: StoreNotConfigured, saying what to set. Which API it is
    follows ``credentials`` (``api_is_local``), the environment's when None.
    """
    from reelflow.flows.plan import local_images
    from reelflow.tasks.store import ClipStore

    if not local_images(plan):
        return None
    loopback_ok = api_is_local(credentials)
    store = store or ClipStore.default()
    store.require_remote_urls(loopback_ok=loopback_ok)
    if store.is_s3:
        return ImageUrls(store, loopback_ok)
    from reelflow.tasks._asset_server import asset_scope

    return ImageUrls(store, loopback_ok, asset_scope())


def account_balance(credentials) -> float | None:
    """The account's credit balance in USD cents (the SDK's unit for ``credit_balance``), or
    None where the API offers none or cannot be reached now (the creates will tell)."""
    import lumaai

    if credentials.api_key is None:  # no Dream Machine key: no balance to ask for
        return None
    try:
        return credentials.get_client().credits.get().credit_balance
    except lumaai.APIError as exc:
        _log.info("credit balance not available (%s)", type(exc).__name__)
        return None


def credits_text(balance: float | None) -> str:
    """A balance with its unit: ``9504.54 credits (USD cents, $95.05)``."""
    if balance is None:
        return "not offered by the API"
    return f"{balance:.2f} credits (USD cents, ${balance / 100:,.2f})"


def check_credits(balance: float | None, to_spend_usd: float) -> None:
    """Before any spend: refuse when there is something to pay for and the balance is empty.

    Only an empty balance is refused: the prices are estimates, the account decides.
    """
    from reelflow.errors import GenerationFailed

    if balance is not None:
        from prefect import get_run_logger

        get_run_logger().info("Account credit balance: %s", credits_text(balance))
    if to_spend_usd > 0 and balance is not None and balance <= 0:
        raise GenerationFailed(f"the Luma account has no credits left (balance {balance}); "
                               f"this render would pay about ${to_spend_usd:.2f}. Nothing was submitted.")
