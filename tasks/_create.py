"""Paid create calls that are never blindly retried (both APIs).

Neither API has an idempotency key, so a create is sent with SDK retries off, and what
an error means is the provider's ``classify`` (default: the Dream Machine SDK's):

* 429 (rate or concurrency limit) means nothing was created: wait as told
  (``retry-after``, else ``X-RateLimit-Reset``) and send it again;
* a connection that was never made means nothing was sent: send it again;
* a dropped connection, a timeout or a 5xx leaves the outcome unknown: ``reconcile``
  decides. On the Dream Machine API it looks the account's newest generations up and
  adopts the one made from exactly this request (every field the account echoes, see
  ``request_form``), created since just before we sent it; only when none matches is it
  sent again. The Agents API cannot be asked (``AnswerLost``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import lumaai

from reelflow.errors import GenerationFailed

__all__ = ["API_DEFAULTS", "NothingSent", "create_once", "dream_machine_error", "find_matching",
           "recover_interrupted", "request_form", "retry_after"]

_log = logging.getLogger("reelflow.tasks.create")

#: How many times a create is re-sent after 429s or unknown outcomes before giving up.
MAX_CREATE_ATTEMPTS = 12
#: How far back (seconds, for clock skew) a matching generation may have been created.
CLOCK_SKEW_S = 120
#: Reconciliation reads the account's list in pages of this many generations...
RECONCILE_WINDOW = 50
#: ...and at most this many pages (a busy account's whole day, or more).
RECONCILE_PAGES = 40

#: The longest single wait a 429 is given.
MAX_RATE_LIMIT_WAIT_S = 60.0


class NothingSent(GenerationFailed):
    """The create is known not to have been made (refused, or never sent): nothing to adopt."""


def dream_machine_error(exc: BaseException):
    """How a ``lumaai`` error reads (see ``_providers.ErrorKind``): after a connection error,
    a timeout, a 5xx, 408 or 409 the create may or may not exist."""
    if isinstance(exc, lumaai.RateLimitError):
        return "rate_limited"
    if isinstance(exc, lumaai.APIStatusError):
        return "unknown" if exc.status_code >= 500 or exc.status_code in (408, 409) else "refused"
    if isinstance(exc, lumaai.APIConnectionError):
        return "unknown"
    return None


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


#: What the API assumes for a top-level request field left out (luma-api.md): an absent
#: field and its default compare equal, on our side and on the account's echo alike.
API_DEFAULTS: dict[str, Any] = {"generation_type": "video", "aspect_ratio": "16:9",
                                "resolution": "720p", "duration": "5s", "loop": False}


#: A stored file's name in a URL: its content hash and extension.
_STORED_NAME = re.compile(r"[0-9a-f]{64}\.[a-z0-9]{1,8}")


def _absent(value: Any) -> bool:
    return value is None or value == {} or value == []


def _image_identity(url: str) -> str:
    """What names a keyframe image's content: a stored image's file name (``<sha256>.<ext>``:
    the same bytes whatever the host, port, render's asset path or presigned query, all of
    which change between attempts and runs), else the URL's path."""
    path = urlsplit(url).path
    name = path.rsplit("/", 1)[-1]
    return name if _STORED_NAME.fullmatch(name) else path


def _canonical(value: Any, defaults: dict[str, Any] | None = None) -> Any:
    """A request in one comparable form: every field kept (echoed fields we never send
    included), except those absent, empty or at the API's default (``defaults``); a
    keyframe image URL cut to what names its content (``_image_identity``)."""
    if isinstance(value, dict):
        if value.get("type") == "image" and isinstance(value.get("url"), str):
            value = {**value, "url": _image_identity(value["url"])}
        items = ((name, _canonical(item)) for name, item in value.items())
        return {name: item for name, item in items
                if not _absent(item) and not (defaults and name in defaults
                                              and defaults[name] == item)}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    return value


def request_form(request: dict[str, Any]) -> dict[str, Any]:
    """A video request as compared when reconciling: see ``_canonical``."""
    return _canonical(request, API_DEFAULTS)


def _matches(generation: Any, payload: dict[str, Any]) -> bool:
    """True when the generation was made from exactly ``payload``: every field the account
    echoes, present or absent, equals ours (a request without concepts, keyframes or loop
    never matches one with them, nor the other way round)."""
    if generation.request is None:
        return False
    return request_form(generation.request.model_dump(mode="json")) == request_form(payload)


def _older_than(generation: Any, since: datetime) -> bool:
    created = generation.created_at
    return created is not None and created.tzinfo is not None and created < since


def find_matching(client: lumaai.LumaAI, payload: dict[str, Any], since: datetime | None,
                  accept: Callable[[str], bool] = lambda _id: True) -> str | None:
    """The id of the newest generation made from exactly ``payload`` since ``since`` (None:
    as far back as reconciliation reads) that ``accept(id)`` takes.

    ``accept`` may claim the id for the caller (see ``Ledger.claim``): of several matches
    (takes of one payload) each caller then adopts a different one. The account lists
    newest first; pages are read until one reaches back past ``since``.
    """
    for page_no in range(RECONCILE_PAGES):
        page = client.generations.list(limit=RECONCILE_WINDOW, offset=page_no * RECONCILE_WINDOW)
        generations = page.generations or []
        for generation in generations:
            if since is not None and _older_than(generation, since):
                return None  # newest first: everything after this is older still
            if (generation.created_at is not None and _matches(generation, payload)
                    and accept(generation.id)):
                return generation.id
        if len(generations) < RECONCILE_WINDOW:
            return None
    return None


def create_once(send: Callable[[], Any], client: Any = None, *, shot_id: str,
                reconcile: Callable[[datetime], str | None],
                before_send: Callable[[], None] | None = None,
                classify: Callable[[BaseException], str | None] = dream_machine_error) -> str:
    """Send a create (``send``) until it is known to exist exactly once; return its id.

    ``reconcile(since)`` answers, after an unknown outcome, the id of the generation
    that request made, or None when it made none (for a new generation: the matching
    entry of the account's list created since ``since``, see ``find_matching``); it may
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
               classify: Callable[[BaseException], str | None] = dream_machine_error) -> str | None:
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
                        classify: Callable[[BaseException], str | None] = dream_machine_error
                        ) -> str | None:
    """After a run died while sending a create (sent at ``sent_at``; None: unknown, e.g.
    its ledger record is unreadable): the id of the generation it made, or None when it
    made none. Raises GenerationFailed when the API cannot be asked, rather than risk
    paying twice."""
    since = None if sent_at is None else sent_at - timedelta(seconds=CLOCK_SKEW_S)
    return _reconcile(recover, since, shot_id, strict=True, classify=classify)
