"""The generation seam's shared machinery: ledger-guarded paid steps, each paid at most once.

For every step (the base generation, then ``upscale``, then ``audio``) under the lock
of that step's key: a stored clip is reused; a recorded generation id is waited on
again (a killed run resumes, it never re-pays); a send that a killed run left in
flight is recovered (looked up on the account and adopted where the API allows it,
else refused with a way on: ``AnswerLost``); otherwise the create goes out once
(``_create.create_once``) with the moment of sending recorded first, its id is
written to the ledger before anything waits, and the finished video is downloaded,
verified and stored. Whatever differs between the two Luma APIs is the ``Provider``'s
(``_providers``): the same code here serves ray-2 and ray-3.2.

A failed generation: moderation (``content_moderated``, or a reason saying so) follows
the moderation policy, never resubmitted; ``rate_limited`` is waited out and sent
again; ``budget_exhausted`` stops later creates to that account; a generic failure
("Job failed", ``generation_failed``) is resubmitted a bounded number of times; any
other code fails the shot with the code and the reason.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

from reelflow import _progress
from reelflow.config import settings
from reelflow.errors import (DownloadError, GenerationFailed, LedgerConflict, ModerationRefused,
                             NothingSent, SendingElsewhere)
from reelflow.tasks._calls import PaidCall
from reelflow.tasks._create import recover_interrupted
from reelflow.tasks._ledger import Ledger, LedgerEntry, PaidAttempt
from reelflow.tasks._outputs import EXR_SUFFIX, STILL, VIDEO, Output, download_exr
from reelflow.tasks._providers import Provider
from reelflow.tasks.models import Clip, GenerationRequest
from reelflow.tasks.store import ClipStore

__all__ = ["DEFAULT_RESUBMITS", "generate", "generate_still", "wait", "with_generation"]

#: Polling starts fast and backs off to this many seconds between GETs.
MAX_POLL_INTERVAL_S = 8.0
#: A generation still not finished after this long is given up on (it stays recorded).
DEFAULT_WAIT_DEADLINE_S = 30 * 60
#: Consecutive failed polls (after the SDK's own retries) before a wait gives up.
MAX_TRANSIENT_POLL_ERRORS = 8
#: How many times a generic (non-moderation) failure is resubmitted.
DEFAULT_RESUBMITS = 2
#: How long another machine's record "sending now" is trusted before it counts as left
#: by a dead run (a create, with its 429 waits, is over long before);
#: REELFLOW_SENDING_LIVE_S overrides it.
SENDING_LIVE_S = 15 * 60
#: Pause before reading a record again that another machine just changed.
CONFLICT_BACKOFF_S = 2.0
#: A generation that failed ``rate_limited`` is sent again after this many seconds
#: (doubling), at most RATE_LIMITED_RESENDS times.
RATE_LIMITED_WAIT_S = 2.0
RATE_LIMITED_RESENDS = 6
#: Failure codes (Agents API) a resubmission can cure; None: the Dream Machine API's.
_RESUBMITTABLE = (None, "generation_failed")

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


def wait(provider: Provider, generation_id: str, *, shot_id: str, not_video: str | None = None,
         deadline_s: float = DEFAULT_WAIT_DEADLINE_S):
    """Poll until completed or failed, backing off; log state changes only.

    Returns the provider's ``Polled`` answer of the completed generation. ``not_video``:
    for in-place steps, a completed state still showing this (the previous) video URL
    is not yet the step's result.
    """
    log = _logger()
    interval, last_state = 0.25, None
    give_up = time.monotonic() + deadline_s
    transient = 0
    while True:
        try:
            polled = provider.poll(generation_id)
            transient = 0
        except Exception as exc:
            # The wait is what gets retried, never the create: keep polling through blips.
            if provider.classify(exc) not in ("rate_limited", "not_sent", "unknown"):
                raise
            transient += 1
            if transient > MAX_TRANSIENT_POLL_ERRORS or time.monotonic() > give_up:
                raise
            log.info("Shot %s: poll of %s failed (%s); retrying", shot_id, generation_id,
                     type(exc).__name__)
            time.sleep(min(0.5 * 2 ** transient, MAX_POLL_INTERVAL_S))
            continue
        state, detail = polled.state, polled.detail
        if state == "completed" and not_video and polled.url == not_video:
            state, detail = "pending", "dreaming"
        if detail != last_state:
            log.info("Shot %s: generation %s is %s", shot_id, generation_id, detail)
            if state == "pending":        # the API's word: queued, or dreaming/processing/...
                _progress.shot_state(shot_id, "queued" if detail == "queued" else "dreaming")
            last_state = detail
        if state == "completed":
            return polled
        if state == "failed":
            raise _failure(polled, generation_id, shot_id)
        if time.monotonic() > give_up:
            raise GenerationFailed(
                f"shot {shot_id}: generation {generation_id} not finished after {deadline_s:.0f}s; "
                "it stays recorded and the next run resumes waiting on it",
                shot_id=shot_id, generation_id=generation_id)
        time.sleep(interval)
        interval = min(interval * 1.6, MAX_POLL_INTERVAL_S)


def _failure(polled, generation_id: str, shot_id: str) -> GenerationFailed:
    """The error a failed generation raises: moderation by its code or its words."""
    reason = polled.failure_reason or "no reason given"
    code = polled.failure_code
    moderated = code == "content_moderated" or (code is None and is_moderation(reason))
    kind = ModerationRefused if moderated else GenerationFailed
    said = f"{code}: {reason}" if code else reason
    return kind(f"shot {shot_id}: generation {generation_id} failed: {said}", shot_id=shot_id,
                generation_id=generation_id, failure_reason=reason, failure_code=code)


def _send(call: PaidCall, entry: LedgerEntry, ledger: Ledger, cost: float,
          sent: list[str]) -> LedgerEntry:
    """Send ``call`` with the intent recorded first; return the record with the new id.

    Raises:
        LedgerConflict: another machine claimed the key first (nothing was sent).
    """
    lock = ledger.lock(call.one_at_a_time) if call.one_at_a_time else contextlib.nullcontext()
    with lock:
        entry.prior_video = call.prepare()
        entry.sending_since = datetime.now(timezone.utc).isoformat()
        entry.sender = ledger.lock_domain()
        entry.sending_cost_usd = cost
        ledger.write(entry)  # the intent: a run killed mid-send is reconciled, never re-sent
        try:
            generation_id = call.send(entry.prior_video)
        except NothingSent:  # refused or never sent: no generation to look for later
            ledger.write(entry.model_copy(update={"sending_since": None, "sender": None,
                                                  "sending_cost_usd": None}))
            raise
        sent.append(generation_id)
        return _record_sent(entry, ledger, generation_id, cost)


def _run_id() -> str | None:
    """The Prefect flow run this code runs in (it paid for what it sends), or None."""
    try:
        from prefect.runtime import flow_run

        return flow_run.get_id()
    except Exception:  # outside a run
        return None


def with_generation(entry: LedgerEntry, generation_id: str, cost: float,
                     adopted: bool = False) -> LedgerEntry:
    """``entry`` with a paid generation recorded: its id, one more attempt in its history,
    its cost, and no send in flight any more (``adopted``: paid by a run that died)."""
    attempt = PaidAttempt(generation_id=generation_id, cost_usd=cost, sent_at=entry.sending_since,
                          run_id=None if adopted else _run_id())
    return entry.model_copy(update={
        "generation_id": generation_id, "sending_since": None, "sender": None,
        "sending_cost_usd": None, "attempts": entry.attempts + 1,
        "cost_usd": round(entry.cost_usd + cost, 4),  # stills cost fractions of a cent
        "history": [*entry.history, attempt]})


def _record_sent(entry: LedgerEntry, ledger: Ledger, generation_id: str, cost: float) -> LedgerEntry:
    """Write a paid create's id before anything waits (a crash resumes, never re-pays).

    A paid id must not be lost to a conflict: the record is read again and the id
    written into it, unless another machine recorded a generation there meanwhile.
    """
    while True:
        entry = with_generation(entry, generation_id, cost)
        try:
            ledger.write(entry)
            return entry
        except LedgerConflict:
            time.sleep(CONFLICT_BACKOFF_S)
        entry = ledger.read(entry.key) or LedgerEntry(key=entry.key, shot_id=entry.shot_id)
        if entry.generation_id not in (None, generation_id):
            _logger().error("Shot %s: generation %s was paid, but another machine recorded %s "
                            "for the same request meanwhile; %s is left unused", entry.shot_id,
                            generation_id, entry.generation_id, generation_id)
            return entry


def _sending_elsewhere(entry: LedgerEntry, ledger: Ledger) -> bool:
    """True while another machine may still be sending ``entry``'s create.

    An intent from this lock domain is stale (we hold the key's lock, so its writer
    died); one from elsewhere is trusted for SENDING_LIVE_S, longer than any create.
    """
    if entry.sender in (None, ledger.lock_domain()):
        return False
    age = datetime.now(timezone.utc) - datetime.fromisoformat(entry.sending_since)
    return age.total_seconds() < settings().seconds("sending_live", SENDING_LIVE_S)


def _recover(call: PaidCall, entry: LedgerEntry, ledger: Ledger, cost: float,
             shot_id: str) -> LedgerEntry:
    """A run died while sending: adopt what it made (it was paid), or clear the intent."""
    sent_at = datetime.fromisoformat(entry.sending_since)
    found = recover_interrupted(lambda since: call.recover(since, entry.prior_video), sent_at,
                                shot_id)
    if found:
        _logger().warning("Shot %s: adopted generation %s, made by a run that died while "
                          "sending it", shot_id, found)
        entry = with_generation(entry, found, cost, adopted=True)
    else:
        entry = entry.model_copy(update={"sending_since": None, "sender": None,
                                         "sending_cost_usd": None})
    ledger.write(entry)
    return entry


def _recover_unreadable(call: PaidCall, entry: LedgerEntry, ledger: Ledger, cost: float,
                        shot_id: str) -> LedgerEntry:
    """The record of ``entry.key`` cannot be read: rebuild it from the account.

    The generation made from this exact request (and held by no other record) is
    adopted; when the account holds none, the request was never paid and the record
    starts afresh. Where the API cannot be asked (an in-place step; the Agents API has
    no list) the shot is refused, never paid again.
    """
    fresh = LedgerEntry(key=entry.key, shot_id=shot_id)
    if call.find_lost is None:
        raise GenerationFailed(f"shot {shot_id}: ledger record {entry.unreadable} is unreadable "
                               "and the API cannot tell whether this request was paid; nothing "
                               "was sent (delete the record to pay for it again)", shot_id=shot_id)
    found = recover_interrupted(lambda _since: call.find_lost(), None, shot_id)
    if found:
        _logger().warning("Shot %s: recovered generation %s from the account for unreadable "
                          "ledger record %s", shot_id, found, entry.unreadable)
        fresh = with_generation(fresh, found, cost, adopted=True)
    else:
        _logger().warning("Shot %s: the account holds no generation of this request; "
                          "unreadable ledger record %s is replaced", shot_id, entry.unreadable)
    ledger.write(fresh)
    return fresh


def _paid_step(key: str, *, shot_id: str, provider: Provider, store: ClipStore, ledger: Ledger,
               call: PaidCall, cost: float, resubmits: int = DEFAULT_RESUBMITS,
               output: Output = VIDEO, exr: bool = False):
    """One paid step under its key's lock: reuse, resume, recover or create once, then download.

    With a shared ledger another machine may act on the key meanwhile: every write is
    conditional, and a lost one (LedgerConflict) means "read what it did and follow it".
    """
    sent: list[str] = []  # what this call paid for, over every pass
    waiting_since = None
    with ledger.lock(key):
        while True:
            try:
                clip = _step(key, shot_id, provider, store, ledger, call, cost, resubmits, sent,
                             output)
                if exr:
                    clip = _with_exr(clip, key, provider, store, ledger, shot_id)
                break
            except SendingElsewhere as elsewhere:
                if waiting_since != elsewhere.since:  # once per record, not once per look
                    _logger().warning("Shot %s: another machine is sending this request "
                                      "(since %s); waiting for its id", shot_id, elsewhere.since)
                    waiting_since = elsewhere.since
                time.sleep(CONFLICT_BACKOFF_S)
            except LedgerConflict:
                time.sleep(CONFLICT_BACKOFF_S)
    # Of what was sent, only the generation that completed stays billed: a failed
    # generation's charge is given back (as the emulator does; the ledger's history keeps
    # every attempt, and the render's summary checks the balance).
    return clip.model_copy(update={"paid": bool(sent), "cost_usd": cost if sent else 0.0})


def _with_exr(clip, key: str, provider: Provider, store: ClipStore, ledger: Ledger,
              shot_id: str):
    """The clip with its generation's EXR export in the store (fetched from the generation
    when missing: nothing is paid), recorded in the key's ledger entry."""
    entry = ledger.read(key)
    if entry.exr_sha256 and store.has(entry.exr_sha256, EXR_SUFFIX):
        return clip.model_copy(update={"exr_sha256": entry.exr_sha256})
    polled = provider.poll(entry.generation_id)
    if polled.state != "completed" or not polled.exr_url:
        raise DownloadError(f"shot {shot_id}: generation {entry.generation_id} has no EXR "
                            f"export (asked with exr: true)")
    _progress.shot_state(shot_id, "downloading")
    entry.exr_sha256 = download_exr(polled.exr_url, store, clip.frames)
    _logger().info("Shot %s: stored EXR export %s", shot_id, entry.exr_sha256[:12])
    ledger.write(entry)
    return clip.model_copy(update={"exr_sha256": entry.exr_sha256})


def _step(key: str, shot_id: str, provider: Provider, store: ClipStore, ledger: Ledger,
          call: PaidCall, cost: float, resubmits: int, sent: list[str], output: Output):
    """One pass of ``_paid_step`` from the record as it is now; ids it pays for go to ``sent``."""
    entry = ledger.read(key) or LedgerEntry(key=key, shot_id=shot_id)
    if entry.unreadable:
        entry = _recover_unreadable(call, entry, ledger, cost, shot_id)
    if entry.sha256 and store.has(entry.sha256, output.suffix):
        _logger().info("Shot %s: cached %s %s", shot_id, output.name, entry.sha256[:12])
        _progress.shot_state(shot_id, "cached")
        return output.stored(store, entry)
    if entry.generation_id is None and entry.sending_since:
        if _sending_elsewhere(entry, ledger):
            raise SendingElsewhere(entry.sending_since)
        entry = _recover(call, entry, ledger, cost, shot_id)
    rate_limited = 0
    while True:
        if entry.generation_id is None:
            entry = _send(call, entry, ledger, cost, sent)
            _logger().info("Shot %s: submitted generation %s", shot_id, entry.generation_id)
            _progress.shot_state(shot_id, "queued", paid_usd=cost)
        try:
            polled = wait(provider, entry.generation_id, shot_id=shot_id,
                          not_video=entry.prior_video)
            break
        except GenerationFailed as failed:
            code = failed.failure_code
            if failed.failure_reason is not None:  # it ended failed (not: still dreaming)
                entry.attempt_ended("failed", failed.failure_reason)
            if code == "budget_exhausted":
                provider.mark_exhausted()
                raise
            if code == "rate_limited" and rate_limited < RATE_LIMITED_RESENDS:
                delay = RATE_LIMITED_WAIT_S * 2 ** rate_limited
                rate_limited += 1
                _logger().warning("Shot %s: generation %s failed (%s); sending again in %.0fs",
                                  shot_id, failed.generation_id, failed.failure_reason, delay)
                time.sleep(delay)
            elif failed.failure_reason is None or code not in _RESUBMITTABLE \
                    or isinstance(failed, ModerationRefused) or entry.attempts > resubmits:
                if failed.failure_reason is not None:
                    ledger.write(entry)  # the failed attempt stays on record, with its reason
                raise
            else:
                _logger().warning("Shot %s: generation %s failed (%s); resubmitting (attempt %d of %d)",
                                  shot_id, failed.generation_id, failed.failure_reason,
                                  entry.attempts + 1, resubmits + 1)
            entry.generation_id = None
        except Exception as exc:
            if not provider.is_not_found(exc):
                raise
            _logger().warning("Shot %s: generation %s unknown to this account; resubmitting",
                              shot_id, entry.generation_id)
            entry.attempt_ended("failed", "unknown to this account")
            entry.generation_id = None
    _progress.shot_state(shot_id, "downloading")
    clip = output.fetch(polled.url, store)
    entry.attempt_ended("completed")
    entry.sha256 = clip.sha256
    ledger.write(entry)
    return clip.model_copy(update={"generation_id": entry.generation_id})


def generate(request: GenerationRequest, *, shot_id: str, provider: Provider, store: ClipStore,
             ledger: Ledger, resubmits: int = DEFAULT_RESUBMITS,
             before_create: Callable[[], None] | None = None) -> Clip:
    """The base generation and its steps; the returned Clip is the last step's video.

    ``provider`` speaks the API that serves ``request.model`` (``_providers.provider_for``).
    ``before_create`` runs before every create attempt (a shared rate limit).
    """
    clip = _paid_step(request.cache_key(), shot_id=shot_id, provider=provider, store=store,
                      ledger=ledger, call=provider.base_call(request, ledger, shot_id, before_create),
                      cost=request.estimated_cost(), resubmits=resubmits, exr=request.exr)
    paid, spent = clip.paid, clip.cost_usd
    for step in request.steps():
        clip = _paid_step(request.step_key(step), shot_id=shot_id, provider=provider, store=store,
                          ledger=ledger, cost=request.estimated_cost(step), resubmits=0,
                          call=provider.step_call(step, request, clip.generation_id, shot_id,
                                                  before_create))
        paid, spent = paid or clip.paid, spent + clip.cost_usd
    return clip.model_copy(update={"paid": paid, "cost_usd": round(spent, 2)})


def generate_still(request: GenerationRequest, *, shot_id: str, provider: Provider,
                   store: ClipStore, ledger: Ledger,
                   before_create: Callable[[], None] | None = None):
    """A uni-1 still (``request.model`` uni-1 or uni-1-max) as one paid, ledgered step of
    the same seam: paid once per request key, stored as a PNG, returned as a ``Still``."""
    return _paid_step(request.cache_key(), shot_id=shot_id, provider=provider, store=store,
                      ledger=ledger, call=provider.base_call(request, ledger, shot_id, before_create),
                      cost=request.estimated_cost(), output=STILL)
