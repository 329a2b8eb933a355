"""Paid create calls that are never blindly retried (both APIs).

Neither API has an idempotency key, so a create is sent with SDK retries off, and what
an error means is the provider's ``classify`` (``_providers.ErrorKind``):

* 429 (rate or concurrency limit) means nothing was created: wait as told
  (``retry-after``, else ``X-RateLimit-Reset``) and send it again;
* a connection that was never made means nothing was sent: send it again;
* a dropped connection, a timeout or a 5xx leaves the outcome unknown: ``reconcile``
  decides. On the Dream Machine API it looks the account's newest generations up and
  adopts the one made from exactly this request (``_dream_machine.find_matching``);
  only when none matches is it sent again. The Agents API cannot be asked
  (``AnswerLost``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from reelflow.errors import GenerationFailed, NothingSent

__all__ = ["CLOCK_SKEW_S", "MAX_CREATE_ATTEMPTS", "create_once",
           "recover_interrupted", "retry_after", "sdk_error", "status_kind"]

_log = logging.getLogger("reelflow.tasks.create")

#: How many times a create is re-sent after 429s or unknown outcomes before giving up.
MAX_CREATE_ATTEMPTS = 12
#: How far back (seconds, for clock skew) a matching generation may have been created.
CLOCK_SKEW_S = 120
#: The longest single wait a 429 is given.
MAX_RATE_LIMIT_WAIT_S = 60.0


def status_kind(exc: BaseException, sdk) -> str | None:
    """How an answered error of a Stainless SDK module ``sdk`` (lumaai, luma_agents) reads:
    429 rate-limited; a 5xx, 408 or 409 leaves the outcome unknown; any other status
    refused the request; None for an error without an answer."""
    if isinstance(exc, sdk.RateLimitError):
        return "rate_limited"
    if isinstance(exc, sdk.APIStatusError):
        return "unknown" if exc.status_code >= 500 or exc.status_code in (408, 409) else "refused"
    return None


def sdk_error(exc: BaseException):
    """An error of either Luma SDK reads as ``unknown`` (a look-up worth retrying); any
    other exception (``AnswerLost``, a bug) is not an API error (None)."""
    import luma_agents
    import lumaai

    return "unknown" if isinstance(exc, (lumaai.APIError, luma_agents.APIError)) else None


def retry_after(headers, attempt: int) -> float:
    """Seconds a 429 asks us to wait: ``retry-after-ms``, ``retry-after``, else
    ``X-RateLimit-Reset`` (epoch seconds, or seconds from now), else a backoff."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return min(max(float(headers.get(name, "")) * scale, 0.1), MAX_RATE_LIMIT_WAIT_S)
        except ValueError:
            continue
    try:
        reset = float(headers.get("x-ratelimit-reset", ""))
        wait = reset - time.time() if reset > 1e9 else reset
        return min(max(wait, 0.1), MAX_RATE_LIMIT_WAIT_S)
    except ValueError:
        return min(0.5 * 2 ** attempt, 30.0)


def create_once(send: Callable[[], Any], client: Any = None, *, shot_id: str,
                reconcile: Callable[[datetime], str | None],
                classify: Callable[[BaseException], str | None],
                before_send: Callable[[], None] | None = None) -> str:
    """Send a create (``send``) until it is known to exist exactly once; return its id.

    ``reconcile(since)`` answers, after an unknown outcome, the id of the generation
    that request made, or None when it made none (for a new generation: the matching
    entry of the account's list created since ``since``, see ``_dream_machine.find_matching``); it may
    raise instead (the Agents API: ``AnswerLost``). ``before_send`` runs before every
    attempt (e.g. to take a slot of a rate limit). ``classify`` reads the SDK's errors.

    Raises:
        NothingSent: the API refused it, or every attempt was turned away unsent.
    """
    maybe_sent = False
    for attempt in range(MAX_CREATE_ATTEMPTS):
        since = datetime.now(timezone.utc) - timedelta(seconds=CLOCK_SKEW_S)
        if before_send is not None:
            before_send()
        try:
            return send().id
        except Exception as exc:
            kind = classify(exc)
            if kind is None:
                raise
            if kind == "refused":
                raise _refused(exc, shot_id) from None  # 400/401/402/403/404/422: nothing made
            if kind == "rate_limited":
                delay = retry_after(exc.response.headers, attempt)
                _log.info("Shot %s: create rate-limited; retrying in %.1fs", shot_id, delay)
                time.sleep(delay)
                continue
            if kind == "not_sent":
                _log.info("Shot %s: create not sent (%s); sending again", shot_id,
                          type(exc).__name__)
                time.sleep(min(0.5 * 2 ** attempt, 10.0))
                continue
            maybe_sent = True
            _log.warning("Shot %s: create outcome unknown (%s); reconciling", shot_id,
                         type(exc).__name__)
            adopted = _reconcile(reconcile, since, shot_id, classify=classify)
            if adopted:
                return adopted
            time.sleep(min(0.5 * 2 ** attempt, 10.0))
    kind = GenerationFailed if maybe_sent else NothingSent
    raise kind(f"shot {shot_id}: the create request failed {MAX_CREATE_ATTEMPTS} times "
               "(rate limits or lost connections); nothing was adopted", shot_id=shot_id)


def _refused(exc, shot_id: str) -> NothingSent:
    """The API refused the create outright: nothing was created, nothing to retry."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    detail = body.get("detail") or body.get("message") or error.get("message")
    return NothingSent(f"shot {shot_id}: the API refused the request ({exc.status_code}): "
                       f"{detail or exc.message}", shot_id=shot_id,
                       failure_reason=f"{exc.status_code}: {detail or exc.message}")


def _reconcile(reconcile, since: datetime | None, shot_id: str, *, strict: bool = False,
               classify: Callable[[BaseException], str | None] = sdk_error) -> str | None:
    """``reconcile(since)``, retried; None when it found nothing or (not ``strict``) never
    got an answer; ``strict`` raises GenerationFailed instead of guessing "nothing"."""
    for attempt in range(5):  # the look-up itself may fail under the same faults
        try:
            found = reconcile(since)
        except Exception as exc:
            if classify(exc) is None:
                raise
            time.sleep(0.5 * 2 ** attempt)
            continue
        if found:
            _log.warning("Shot %s: adopted generation %s created by the lost request", shot_id, found)
        return found
    if strict:
        raise GenerationFailed(f"shot {shot_id}: could not ask the API whether an interrupted "
                               "create went through; nothing was sent again (rerun to retry)",
                               shot_id=shot_id)
    return None


def recover_interrupted(recover: Callable[[datetime | None], str | None],
                        sent_at: datetime | None, shot_id: str,
                        classify: Callable[[BaseException], str | None] = sdk_error
                        ) -> str | None:
    """After a run died while sending a create (sent at ``sent_at``; None: unknown, e.g.
    its ledger record is unreadable): the id of the generation it made, or None when it
    made none. Raises GenerationFailed when the API cannot be asked, rather than risk
    paying twice."""
    since = None if sent_at is None else sent_at - timedelta(seconds=CLOCK_SKEW_S)
    return _reconcile(recover, since, shot_id, strict=True, classify=classify)
