"""Paid create calls that are never blindly retried.

The API has no idempotency key, so a create is sent with SDK retries off, and:

* 429 (rate or concurrency limit) means nothing was created: wait as told
  (``retry-after``) and send it again;
* a dropped connection, a timeout or a 5xx leaves the outcome unknown: look the
  account's newest generations up and adopt the one that matches the request,
  created since just before we sent it; only when none matches is it sent again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from datetime import datetime, timedelta, timezone
from typing import Any

import lumaai

from reelflow.errors import GenerationFailed

__all__ = ["create_once", "find_matching"]

_log = logging.getLogger("reelflow.tasks.create")

#: How many times a create is re-sent after 429s or unknown outcomes before giving up.
MAX_CREATE_ATTEMPTS = 12
#: How far back (seconds, for clock skew) a matching generation may have been created.
CLOCK_SKEW_S = 120
#: How many of the newest generations reconciliation looks through.
RECONCILE_WINDOW = 50

#: Errors after which the create may or may not exist (timeouts are connection errors);
#: 408 and 409 answers are treated the same way.
_UNKNOWN_OUTCOME = (lumaai.APIConnectionError, lumaai.InternalServerError)


def _retry_after(exc: lumaai.APIStatusError, attempt: int) -> float:
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return min(max(float(headers.get(name, "")) * scale, 0.1), 60.0)
        except ValueError:
            continue
    return min(0.5 * 2 ** attempt, 30.0)


def _matches(generation: Any, payload: dict[str, Any], since: datetime) -> bool:
    request = generation.request.model_dump(exclude_none=True) if generation.request else {}
    created = generation.created_at
    if created is None or created.tzinfo is None or created < since:
        return False
    return all(request.get(name) == value for name, value in payload.items())


def find_matching(client: lumaai.LumaAI, payload: dict[str, Any], since: datetime,
                  exclude_ids: Collection[str] = ()) -> str | None:
    """The id of the newest generation made from ``payload`` since ``since``, not in ``exclude_ids``."""
    page = client.generations.list(limit=RECONCILE_WINDOW, offset=0)
    for generation in page.generations or []:
        if generation.id not in exclude_ids and _matches(generation, payload, since):
            return generation.id
    return None


def create_once(send: Callable[[], Any], client: lumaai.LumaAI, *, shot_id: str,
                reconcile: Callable[[datetime], str | None],
                before_send: Callable[[], None] | None = None) -> str:
    """Send a create (``send``) until it is known to exist exactly once; return its id.

    ``reconcile(since)`` answers, after an unknown outcome, the id of the generation
    that request made, or None when it made none (for a new generation: the matching
    entry of the account's list created since ``since``, see ``find_matching``).
    ``before_send`` runs before every attempt (e.g. to take a slot of a rate limit).
    """
    for attempt in range(MAX_CREATE_ATTEMPTS):
        since = datetime.now(timezone.utc) - timedelta(seconds=CLOCK_SKEW_S)
        if before_send is not None:
            before_send()
        try:
            return send().id
        except lumaai.RateLimitError as exc:
            delay = _retry_after(exc, attempt)
            _log.info("Shot %s: create rate-limited; retrying in %.1fs", shot_id, delay)
            time.sleep(delay)
        except (*_UNKNOWN_OUTCOME, lumaai.APIStatusError) as exc:
            if isinstance(exc, lumaai.APIStatusError) and exc.status_code < 500 \
                    and exc.status_code not in (408, 409):
                raise _refused(exc, shot_id) from None  # 400/401/402/403/404/422: nothing made
            _log.warning("Shot %s: create outcome unknown (%s); reconciling", shot_id,
                         type(exc).__name__)
            adopted = _reconcile(reconcile, since, shot_id)
            if adopted:
                return adopted
            time.sleep(min(0.5 * 2 ** attempt, 10.0))
    raise GenerationFailed(f"shot {shot_id}: the create request failed {MAX_CREATE_ATTEMPTS} times "
                           "(rate limits or lost connections); nothing was adopted", shot_id=shot_id)


def _refused(exc: lumaai.APIStatusError, shot_id: str) -> GenerationFailed:
    """The API refused the create outright: nothing was created, nothing to retry."""
    detail = exc.body.get("detail") if isinstance(exc.body, dict) else None
    return GenerationFailed(f"shot {shot_id}: the API refused the request ({exc.status_code}): "
                            f"{detail or exc.message}", shot_id=shot_id,
                            failure_reason=f"{exc.status_code}: {detail or exc.message}")


def _reconcile(reconcile, since: datetime, shot_id: str) -> str | None:
    for attempt in range(5):  # the look-up itself may fail under the same faults
        try:
            found = reconcile(since)
        except (lumaai.APIConnectionError, lumaai.APIStatusError):
            time.sleep(0.5 * 2 ** attempt)
            continue
        if found:
            _log.warning("Shot %s: adopted generation %s created by the lost request", shot_id, found)
        return found
    return None
