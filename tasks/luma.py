"""Luma generations through the official lumaai SDK: credentials, submit, wait, download.

The only paid step is the create call. It goes out once per request key, ever:
the key's ledger entry records the generation id before anything waits, creates
go out with SDK retries off (the API has no idempotency key), and the wait, not
the create, is what gets retried.
"""

from __future__ import annotations

import functools
import os
import time

import httpx
import lumaai
from prefect import get_run_logger, task
from prefect.blocks.abstract import CredentialsBlock
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from pydantic import Field, SecretStr

from reelflow.errors import DownloadError, GenerationFailed, ModerationRefused
from reelflow.tasks._ledger import Ledger, LedgerEntry
from reelflow.tasks.models import Clip, GenerationRequest
from reelflow.tasks.store import ClipStore

__all__ = [
    "LumaCredentials",
    "download_clip",
    "generate_clip",
    "submit_generation",
    "wait_for_generation",
]

#: Polling starts fast and backs off to this many seconds between GETs.
MAX_POLL_INTERVAL_S = 8.0
#: A generation still not finished after this long is given up on (it stays recorded).
DEFAULT_WAIT_DEADLINE_S = 30 * 60
#: How many times a generic (non-moderation) failure is resubmitted.
DEFAULT_RESUBMITS = 2

_MODERATION_WORDS = ("moderation", "policy", "safety", "refused", "inappropriate")


def _logger():
    try:
        return get_run_logger()
    except MissingContextError:
        import logging

        return logging.getLogger("reelflow.tasks.luma")


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


def _is_moderation(reason: str | None) -> bool:
    text = (reason or "").lower()
    return any(word in text for word in _MODERATION_WORDS)


def _submit(client: lumaai.LumaAI, request: GenerationRequest) -> str:
    """One create call, never retried by the SDK. Returns the generation id."""
    generation = client.with_options(max_retries=0).generations.video.create(**request.api_kwargs())
    return generation.id


def _wait(client: lumaai.LumaAI, generation_id: str, *, shot_id: str,
          deadline_s: float = DEFAULT_WAIT_DEADLINE_S):
    """Poll until completed or failed, backing off; log state changes only."""
    log = _logger()
    interval, last_state = 0.25, None
    give_up = time.monotonic() + deadline_s
    while True:
        generation = client.generations.get(generation_id)
        if generation.state != last_state:
            log.info("Shot %s: generation %s is %s", shot_id, generation_id, generation.state)
            last_state = generation.state
        if generation.state == "completed":
            return generation
        if generation.state == "failed":
            reason = generation.failure_reason or "no reason given"
            kind = ModerationRefused if _is_moderation(reason) else GenerationFailed
            raise kind(f"shot {shot_id}: generation {generation_id} failed: {reason}",
                       shot_id=shot_id, generation_id=generation_id, failure_reason=reason)
        if time.monotonic() > give_up:
            raise GenerationFailed(
                f"shot {shot_id}: generation {generation_id} not finished after {deadline_s:.0f}s; "
                "it stays recorded and the next run resumes waiting on it",
                shot_id=shot_id, generation_id=generation_id)
        time.sleep(interval)
        interval = min(interval * 1.6, MAX_POLL_INTERVAL_S)


def _download(url: str, store: ClipStore, *, attempts: int = 3) -> Clip:
    """Stream the video into the store, verify it decodes, return the stored Clip."""
    from reelflow.tasks._probe import probe  # PyAV import only where media is touched

    last_error: Exception | None = None
    for _ in range(attempts):
        staging = store.staging_path()
        try:
            with httpx.stream("GET", url, timeout=httpx.Timeout(60, connect=5),
                              follow_redirects=True) as response:
                response.raise_for_status()
                expected = int(response.headers.get("content-length") or 0)
                with open(staging, "wb") as handle:
                    for chunk in response.iter_bytes(1 << 20):
                        handle.write(chunk)
            size = staging.stat().st_size
            if size == 0 or (expected and size != expected):
                raise DownloadError(f"download of {_redact(url)} was cut short ({size} of {expected} bytes)")
            info = probe(staging)
            sha = store.put_file(staging)
            return Clip(sha256=sha, path=store.path_for(sha), width=info.width, height=info.height,
                        fps=info.fps, frames=info.frames, has_audio=info.has_audio)
        except Exception as exc:  # any failure: the partial file never enters the store
            last_error = exc
            staging.unlink(missing_ok=True)
    raise DownloadError(f"could not download {_redact(url)}: {last_error}") from None


def _redact(url: str) -> str:
    """Drop the query string: presigned URLs carry credentials."""
    return url.split("?", 1)[0]


def _generate(request: GenerationRequest, *, shot_id: str, client: lumaai.LumaAI,
              store: ClipStore, ledger: Ledger, resubmits: int = DEFAULT_RESUBMITS) -> Clip:
    """Ledger-guarded generate: reuse the stored clip, resume a recorded id, or pay once."""
    key = request.cache_key()
    with ledger.lock(key):
        entry = ledger.read(key) or LedgerEntry(key=key, shot_id=shot_id)
        if entry.sha256 and store.has(entry.sha256):
            clip = _stored_clip(store, entry)
            _logger().info("Shot %s: cached clip %s", shot_id, entry.sha256[:12])
            return clip
        paid_now = False
        while True:
            if entry.generation_id is None:
                entry.generation_id = _submit(client, request)
                entry.attempts += 1
                entry.cost_usd = request.estimated_cost()
                ledger.write(entry)  # recorded before waiting: a crash resumes, never re-pays
                paid_now = True
                _logger().info("Shot %s: submitted generation %s", shot_id, entry.generation_id)
            try:
                generation = _wait(client, entry.generation_id, shot_id=shot_id)
                break
            except ModerationRefused:
                raise
            except GenerationFailed as failed:
                if failed.failure_reason is None or entry.attempts > resubmits:
                    raise
                _logger().warning("Shot %s: %s; resubmitting", shot_id, failed)
                entry.generation_id = None
            except lumaai.NotFoundError:
                _logger().warning("Shot %s: generation %s unknown to this account; resubmitting",
                                  shot_id, entry.generation_id)
                entry.generation_id = None
        clip = _download(generation.assets.video, store)
        entry.sha256 = clip.sha256
        ledger.write(entry)
        return clip.model_copy(update={"generation_id": entry.generation_id, "paid": paid_now,
                                       "cost_usd": entry.cost_usd if paid_now else 0.0})


def _stored_clip(store: ClipStore, entry: LedgerEntry) -> Clip:
    from reelflow.tasks._probe import probe

    path = store.path_for(entry.sha256)
    info = probe(path)
    return Clip(sha256=entry.sha256, path=path, width=info.width, height=info.height, fps=info.fps,
                frames=info.frames, has_audio=info.has_audio, generation_id=entry.generation_id)


@task(cache_policy=NO_CACHE, retries=0)
def generate_clip(request: GenerationRequest, *, shot_id: str = "clip",
                  credentials: LumaCredentials | None = None,
                  store: ClipStore | None = None) -> Clip:
    """Generate one clip, paying at most once per distinct request, and store it.

    Args:
        request: The normalised generation request; its cache key decides reuse.
        shot_id: Names the shot in logs and errors.
        credentials: Luma credentials; LUMAAI_API_KEY / LUMAAI_BASE_URL when omitted.
        store: The clip store; REELFLOW_HOME/clips when omitted.

    Returns:
        The stored Clip (``paid`` is True when this call made the create request).

    Raises:
        GenerationFailed, ModerationRefused, DownloadError.

    Example:
        ```python
        @flow
        def one_clip():
            return generate_clip(GenerationRequest(model="ray-flash-2", prompt="A red kite"))
        ```
    """
    _logger().info("Generating shot %s (%s, %s)", shot_id, request.model, request.resolution)
    client = (credentials or LumaCredentials.from_env()).get_client()
    return _generate(request, shot_id=shot_id, client=client, store=store or ClipStore.default(),
                     ledger=Ledger.default())


@task(cache_policy=NO_CACHE)
def submit_generation(request: GenerationRequest, *,
                      credentials: LumaCredentials | None = None) -> str:
    """Make one paid create call (no SDK retries) and return the generation id.

    Prefer ``generate_clip``, which records the id in the ledger so it is never paid twice.

    Example:
        ```python
        generation_id = submit_generation(GenerationRequest(model="ray-2", prompt="Dawn"))
        ```
    """
    client = (credentials or LumaCredentials.from_env()).get_client()
    return _submit(client, request)


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
    return _wait(client, generation_id, shot_id=shot_id).assets.video


@task(cache_policy=NO_CACHE)
def download_clip(url: str, *, store: ClipStore | None = None) -> Clip:
    """Download a finished video into the clip store (verified, atomic) and return it.

    Example:
        ```python
        clip = download_clip(url)
        ```
    """
    return _download(url, store or ClipStore.default())
