"""Ledger-guarded paid steps: generate, then upscale and audio, each paid at most once.

For every step (the base generation, then ``upscale``, then ``audio``) under the lock
of that step's key: a stored clip is reused; a recorded generation id is waited on
again (a killed run resumes, it never re-pays); otherwise the create goes out once
(``_create.create_once``), its id is written to the ledger before anything waits,
and the finished video is downloaded, verified and stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import lumaai

from reelflow.errors import DownloadError, GenerationFailed, ModerationRefused
from reelflow.tasks._create import create_once, find_matching
from reelflow.tasks._ledger import Ledger, LedgerEntry
from reelflow.tasks.models import Clip, GenerationRequest
from reelflow.tasks.store import ClipStore

__all__ = ["DEFAULT_RESUBMITS", "download", "generate", "wait"]

#: Polling starts fast and backs off to this many seconds between GETs.
MAX_POLL_INTERVAL_S = 8.0
#: A generation still not finished after this long is given up on (it stays recorded).
DEFAULT_WAIT_DEADLINE_S = 30 * 60
#: Consecutive failed polls (after the SDK's own retries) before a wait gives up.
MAX_TRANSIENT_POLL_ERRORS = 8
#: How many times a generic (non-moderation) failure is resubmitted.
DEFAULT_RESUBMITS = 2

_MODERATION_WORDS = ("moderation", "not allowed", "policy", "safety", "inappropriate")
_log = logging.getLogger("reelflow.tasks.luma")


def _logger():
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # outside a run: the module logger
        return _log


def is_moderation(reason: str | None) -> bool:
    """True when a failure reason says the request was refused on moderation grounds."""
    text = (reason or "").lower()
    return any(word in text for word in _MODERATION_WORDS)


def wait(client: lumaai.LumaAI, generation_id: str, *, shot_id: str, not_video: str | None = None,
         deadline_s: float = DEFAULT_WAIT_DEADLINE_S):
    """Poll until completed or failed, backing off; log state changes only.

    ``not_video``: for in-place steps, a completed state still showing this (the
    previous) video URL is not yet the step's result.
    """
    log = _logger()
    interval, last_state = 0.25, None
    give_up = time.monotonic() + deadline_s
    transient = 0
    while True:
        try:
            generation = client.generations.get(generation_id)
            transient = 0
        except (lumaai.APIConnectionError, lumaai.RateLimitError, lumaai.InternalServerError) as exc:
            # The wait is what gets retried, never the create: keep polling through blips.
            transient += 1
            if transient > MAX_TRANSIENT_POLL_ERRORS or time.monotonic() > give_up:
                raise
            log.info("Shot %s: poll of %s failed (%s); retrying", shot_id, generation_id,
                     type(exc).__name__)
            time.sleep(min(0.5 * 2 ** transient, MAX_POLL_INTERVAL_S))
            continue
        state = generation.state
        if state == "completed" and not_video and generation.assets.video == not_video:
            state = "dreaming"
        if state != last_state:
            log.info("Shot %s: generation %s is %s", shot_id, generation_id, state)
            last_state = state
        if state == "completed":
            return generation
        if state == "failed":
            reason = generation.failure_reason or "no reason given"
            kind = ModerationRefused if is_moderation(reason) else GenerationFailed
            raise kind(f"shot {shot_id}: generation {generation_id} failed: {reason}",
                       shot_id=shot_id, generation_id=generation_id, failure_reason=reason)
        if time.monotonic() > give_up:
            raise GenerationFailed(
                f"shot {shot_id}: generation {generation_id} not finished after {deadline_s:.0f}s; "
                "it stays recorded and the next run resumes waiting on it",
                shot_id=shot_id, generation_id=generation_id)
        time.sleep(interval)
        interval = min(interval * 1.6, MAX_POLL_INTERVAL_S)


def _redact(url: str) -> str:
    """Drop the query string: presigned URLs carry credentials."""
    return url.split("?", 1)[0]


def download(url: str, store: ClipStore, *, attempts: int = 6) -> Clip:
    """Stream the video into the store, verify size and that it decodes, return the Clip.

    A short, corrupt or undecodable file never enters the store; it is fetched again.
    """
    from reelflow.tasks._probe import probe  # PyAV import only where media is touched

    last_error: Exception | None = None
    for attempt in range(attempts):
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
                raise DownloadError(f"cut short: {size} of {expected} bytes")
            info = probe(staging)
            sha = store.put_file(staging)
            return Clip(sha256=sha, path=store.path_for(sha), width=info.width, height=info.height,
                        fps=info.fps, frames=info.frames, has_audio=info.has_audio)
        except Exception as exc:  # any failure: the partial file never enters the store
            last_error = exc
            staging.unlink(missing_ok=True)
            time.sleep(0.2 * 2 ** attempt)
    raise DownloadError(f"could not download {_redact(url)}: {last_error}") from None


def _stored_clip(store: ClipStore, entry: LedgerEntry) -> Clip:
    from reelflow.tasks._probe import probe

    path = store.path_for(entry.sha256)
    info = probe(path, decode=False)
    return Clip(sha256=entry.sha256, path=path, width=info.width, height=info.height, fps=info.fps,
                frames=info.frames, has_audio=info.has_audio, generation_id=entry.generation_id)


def _paid_step(key: str, *, shot_id: str, client: lumaai.LumaAI, store: ClipStore, ledger: Ledger,
               create: Callable[[], tuple[str, str | None]], cost: float,
               resubmits: int = DEFAULT_RESUBMITS) -> Clip:
    """One paid step under its key's lock: reuse, resume or create once, then download.

    ``create`` returns the new generation id and, for in-place steps, the video URL the
    generation showed before the step (so waiting can tell the step's result from it).
    """
    with ledger.lock(key):
        entry = ledger.read(key) or LedgerEntry(key=key, shot_id=shot_id)
        if entry.sha256 and store.has(entry.sha256):
            _logger().info("Shot %s: cached clip %s", shot_id, entry.sha256[:12])
            return _stored_clip(store, entry)
        paid_now = False
        while True:
            if entry.generation_id is None:
                entry.generation_id, entry.prior_video = create()
                entry.attempts += 1
                entry.cost_usd = round(entry.cost_usd + cost, 2)
                ledger.write(entry)  # recorded before waiting: a crash resumes, never re-pays
                paid_now = True
                _logger().info("Shot %s: submitted generation %s", shot_id, entry.generation_id)
            try:
                generation = wait(client, entry.generation_id, shot_id=shot_id,
                                  not_video=entry.prior_video)
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
        clip = download(generation.assets.video, store)
        entry.sha256 = clip.sha256
        ledger.write(entry)
        return clip.model_copy(update={"generation_id": entry.generation_id, "paid": paid_now,
                                       "cost_usd": cost if paid_now else 0.0})


def generate(request: GenerationRequest, *, shot_id: str, client: lumaai.LumaAI, store: ClipStore,
             ledger: Ledger, image_url: Callable[[Path], str] | None = None,
             resubmits: int = DEFAULT_RESUBMITS, before_create: Callable[[], None] | None = None) -> Clip:
    """The base generation and its steps; the returned Clip is the last step's video.

    ``image_url`` turns a local keyframe image into a URL the API can fetch; it is
    called just before the create, so time-limited URLs are fresh. ``before_create``
    runs before every create attempt (a shared rate limit).
    """
    creates = client.with_options(max_retries=0).generations

    def create_base() -> str:
        urls = {name: image_url(frame.path) for name in ("frame0", "frame1")
                if (frame := getattr(request, name)) is not None and frame.path is not None}
        kwargs = request.api_kwargs(urls)
        generation_id = create_once(lambda: creates.video.create(**kwargs), client, shot_id=shot_id,
                                    reconcile=lambda since: find_matching(
                                        client, kwargs, since, ledger.generation_ids()),
                                    before_send=before_create)
        return generation_id, None

    clip = _paid_step(request.cache_key(), shot_id=shot_id, client=client, store=store, ledger=ledger,
                      create=create_base, cost=request.estimated_cost(), resubmits=resubmits)
    paid, spent = clip.paid, clip.cost_usd
    for step in request.steps():
        clip = _paid_step(request.step_key(step), shot_id=shot_id, client=client, store=store,
                          ledger=ledger, cost=request.estimated_cost(step), resubmits=0,
                          create=_step_creator(step, request, clip.generation_id, client, shot_id,
                                               before_create))
        paid, spent = paid or clip.paid, spent + clip.cost_usd
    return clip.model_copy(update={"paid": paid, "cost_usd": round(spent, 2)})


def _step_creator(step: str, request: GenerationRequest, generation_id: str, client: lumaai.LumaAI,
                  shot_id: str, before_create: Callable[[], None] | None
                  ) -> Callable[[], tuple[str, str | None]]:
    """The create of an in-place step (upscale/audio) on a completed generation.

    Its unknown outcome is reconciled by looking at the generation itself: if it left
    the completed state or its video changed, the step was accepted.
    """
    creates = client.with_options(max_retries=0).generations

    def create() -> tuple[str, str | None]:
        before = client.generations.get(generation_id).assets.video
        if step == "upscale":
            send = lambda: creates.upscale(generation_id, resolution=request.upscale)  # noqa: E731
        else:
            send = lambda: creates.audio(generation_id, prompt=request.audio)  # noqa: E731

        def reconcile(_since) -> str | None:
            now = client.generations.get(generation_id)
            changed = now.state in ("queued", "dreaming") or now.assets.video != before
            return generation_id if changed else None

        return create_once(send, client, shot_id=shot_id, reconcile=reconcile,
                           before_send=before_create), before

    return create
