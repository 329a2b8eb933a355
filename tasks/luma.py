"""Luma generations through the official lumaai SDK: credentials, submit, wait, download.

The only paid step is the create call. It goes out once per request key, ever:
the key's ledger entry records the generation id before anything waits, creates
go out with SDK retries off (the API has no idempotency key), and the wait, not
the create, is what gets retried.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import lumaai
from prefect import get_run_logger, task
from prefect.blocks.abstract import CredentialsBlock
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency, rate_limit
from pydantic import Field, SecretStr

from reelflow.tasks import _generate
from reelflow.tasks._create import create_once, find_matching
from reelflow.tasks._ledger import Ledger
from reelflow.tasks.models import Clip, GenerationRequest
from reelflow.tasks.store import ClipStore

__all__ = [
    "LumaCredentials",
    "download_clip",
    "generate_clip",
    "submit_generation",
    "wait_for_generation",
]

#: Names of the global limits the render flow creates (see reelflow.flows.observe).
LUMA_CONCURRENCY_LIMIT = "reelflow-luma-generations"
LUMA_RATE_LIMIT = "reelflow-luma-creates"
#: Seconds a generation slot outlives a holder that stopped renewing it (killed, lost).
SLOT_LEASE_S = 60


class LumaCredentials(CredentialsBlock):
    """Credentials and endpoint for the Luma Dream Machine API.

    Example:
        ```python
        from reelflow.tasks.luma import LumaCredentials
        client = LumaCredentials.load("BLOCK_NAME").get_client()
        ```
    """

    _block_type_name = "Luma Credentials"
    _documentation_url = "https://docs.lumalabs.ai/docs/python-video-generation"  # type: ignore[assignment]

    api_key: SecretStr | None = Field(default=None, description="The Luma API key (LUMAAI_API_KEY).")
    base_url: str | None = Field(default=None, description="The API base URL (LUMAAI_BASE_URL).")

    @classmethod
    def from_env(cls) -> "LumaCredentials":
        """Credentials from LUMAAI_API_KEY and LUMAAI_BASE_URL."""
        key = os.environ.get("LUMAAI_API_KEY")
        return cls(api_key=SecretStr(key) if key else None,
                   base_url=os.environ.get("LUMAAI_BASE_URL") or None)

    def get_client(self) -> lumaai.LumaAI:
        """An SDK client, cached per credentials."""
        token = self.api_key.get_secret_value() if self.api_key else None
        return _cached_client(token, self.base_url)


@functools.lru_cache(maxsize=8)
def _cached_client(token: str | None, base_url: str | None) -> lumaai.LumaAI:
    return lumaai.LumaAI(auth_token=token, base_url=base_url)


@task(cache_policy=NO_CACHE, retries=0)
def generate_clip(request: GenerationRequest, *, shot_id: str = "clip",
                  credentials: LumaCredentials | None = None, store: ClipStore | None = None,
                  image_url: Callable[[Path], str] | None = None,
                  resubmits: int = _generate.DEFAULT_RESUBMITS) -> Clip:
    """Generate one clip, paying at most once per distinct request, and store it.

    Args:
        request: The normalised generation request; its cache key decides reuse.
        shot_id: Names the shot in logs and errors.
        credentials: Luma credentials; LUMAAI_API_KEY / LUMAAI_BASE_URL when omitted.
        store: The clip store; REELFLOW_HOME/clips when omitted.
        image_url: Turns a local keyframe image into a URL the API can fetch.
        resubmits: How often a generic ("Job failed") failure is resubmitted.

    Returns:
        The stored Clip after every step (``paid`` is True when this call paid for any step).

    Raises:
        GenerationFailed, ModerationRefused, DownloadError.

    Example:
        ```python
        @flow
        def one_clip():
            return generate_clip(GenerationRequest(model="ray-flash-2", prompt="A red kite"))
        ```
    """
    get_run_logger().info("Generating shot %s (%s, %s)", shot_id, request.model, request.resolution)
    client = (credentials or LumaCredentials.from_env()).get_client()
    store = store or ClipStore.default()
    ledger = Ledger.for_store(store)  # shared beside the clips when the store is S3

    def run() -> Clip:
        return _generate.generate(request, shot_id=shot_id, client=client, store=store,
                                  ledger=ledger, image_url=image_url, resubmits=resubmits,
                                  before_create=lambda: rate_limit(LUMA_RATE_LIMIT, strict=False))

    if ledger.is_stored(request.final_key(), store):
        return run()  # nothing to pay or wait for: no slot of the account's budget
    # Global limits shared by every run on every worker (created by the render flow; a
    # missing limit does not block, it only logs). The slot's lease is renewed while held
    # and expires a minute after a holder dies, so a crashed run cannot starve the others.
    with concurrency(LUMA_CONCURRENCY_LIMIT, occupy=1, strict=False, lease_duration=SLOT_LEASE_S):
        return run()


@task(cache_policy=NO_CACHE)
def submit_generation(request: GenerationRequest, *,
                      credentials: LumaCredentials | None = None) -> str:
    """Make one paid create (no SDK retries; 429s waited out, lost answers reconciled).

    Prefer ``generate_clip``, which records the id in the ledger so it is never paid twice.

    Example:
        ```python
        generation_id = submit_generation(GenerationRequest(model="ray-2", prompt="Dawn"))
        ```
    """
    client = (credentials or LumaCredentials.from_env()).get_client()
    kwargs = request.api_kwargs()
    return create_once(lambda: client.with_options(max_retries=0).generations.video.create(**kwargs),
                       client, shot_id=request.prompt[:30],
                       reconcile=lambda since: find_matching(client, kwargs, since))


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def wait_for_generation(generation_id: str, *, shot_id: str = "clip",
                        credentials: LumaCredentials | None = None) -> str:
    """Wait for a generation to complete and return its video URL.

    Example:
        ```python
        url = wait_for_generation(generation_id, shot_id="opening")
        ```
    """
    client = (credentials or LumaCredentials.from_env()).get_client()
    return _generate.wait(client, generation_id, shot_id=shot_id).assets.video


@task(cache_policy=NO_CACHE)
def download_clip(url: str, *, store: ClipStore | None = None) -> Clip:
    """Download a finished video into the clip store (verified, atomic) and return it.

    Example:
        ```python
        clip = download_clip(url)
        ```
    """
    return _generate.download(url, store or ClipStore.default())
