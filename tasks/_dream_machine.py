"""The Dream Machine API behind the generation seam: ray-2, ray-flash-2, upscale, audio (``lumaai``).

Everything that is this API's alone lives here: how its SDK's errors read, its paid
calls, and how a lost create answer is reconciled through the account's list. A new
generation is found by its exact request among the account's newest generations (every
field the account echoes, see ``request_form``), and is claimed in the ledger for the
request's key before it is adopted or recorded (``Ledger.claim``), so two requests with
one payload (takes) never share a generation; an in-place step (upscale, audio) is
found by the generation itself (it left the completed state, or its video changed).
Local keyframe images reach this API as URLs (``image_url``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import lumaai

from reelflow.errors import GenerationFailed
from reelflow.spec import API_DEFAULTS, DREAM_MACHINE_API
from reelflow.tasks._calls import PaidCall
from reelflow.tasks._create import CLOCK_SKEW_S, MAX_CREATE_ATTEMPTS, create_once, status_kind
from reelflow.tasks._ledger import Ledger
from reelflow.tasks._providers import Polled
from reelflow.tasks.models import GenerationRequest

__all__ = ["API_DEFAULTS", "DreamMachine", "base_call", "dream_machine_error", "find_matching",
           "request_form", "step_call"]

_log = logging.getLogger("reelflow.tasks.create")

#: Reconciliation reads the account's list in pages of this many generations...
RECONCILE_WINDOW = 50
#: ...and at most this many pages (a busy account's whole day, or more).
RECONCILE_PAGES = 40


def dream_machine_error(exc: BaseException):
    """How a ``lumaai`` error reads (see ``_providers.ErrorKind``): after a connection error,
    a timeout, a 5xx, 408 or 409 the create may or may not exist."""
    return status_kind(exc, lumaai) or ("unknown" if isinstance(exc, lumaai.APIConnectionError)
                                         else None)



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



def _adoptable(ledger: Ledger, key: str) -> Callable[[str], bool]:
    """accept(id) for ``find_matching``: a generation no other record holds, claimed for
    ``key`` (the ledger's records are read once, on the first match)."""
    recorded: set[str] | None = None

    def accept(generation_id: str) -> bool:
        nonlocal recorded
        if recorded is None:
            recorded = ledger.generation_ids()
        return generation_id not in recorded and ledger.claim(generation_id, key)

    return accept


def base_call(request: GenerationRequest, client: lumaai.LumaAI, ledger: Ledger, shot_id: str,
              image_url: Callable[[Path], str] | None,
              before_create: Callable[[], None] | None) -> PaidCall:
    """A new generation: found again by its exact request among the account's newest."""
    creates = client.with_options(max_retries=0).generations
    key = request.cache_key()

    def payload() -> dict[str, Any]:
        urls = {name: image_url(frame.path) for name in ("frame0", "frame1")
                if (frame := getattr(request, name)) is not None and frame.path is not None}
        return request.api_kwargs(urls)

    def find(kwargs: dict[str, Any], since: datetime | None) -> str | None:
        return find_matching(client, kwargs, since, _adoptable(ledger, key))

    def send(_prior: str | None) -> str:
        kwargs = payload()
        for _attempt in range(MAX_CREATE_ATTEMPTS):
            since = datetime.now(timezone.utc) - timedelta(seconds=CLOCK_SKEW_S)
            made = create_once(lambda: creates.video.create(**kwargs), client, shot_id=shot_id,
                               classify=dream_machine_error,
                               reconcile=lambda cutoff: find(kwargs, cutoff),
                               before_send=before_create)
            if ledger.claim(made, key):
                return made
            # A request with this payload (another take, maybe on another machine) lost its
            # answer and adopted ours: its own generation, if its create made one, is ours.
            found = find(kwargs, since)
            _log.warning("Shot %s: generation %s was adopted by another request with the same "
                         "payload; %s", shot_id, made,
                         f"took {found}, made by that request" if found else "sending again")
            if found:
                return found
        raise GenerationFailed(f"shot {shot_id}: every generation made for this request was "
                               "adopted by another with the same payload", shot_id=shot_id)

    return PaidCall(send=send, recover=lambda since, _prior: find(payload(), since),
                    one_at_a_time="send-" + request.model_copy(update={"take": 1}).cache_key(),
                    find_lost=lambda: find(payload(), None))


def step_call(step: str, request: GenerationRequest, generation_id: str, client: lumaai.LumaAI,
              shot_id: str, before_create: Callable[[], None] | None) -> PaidCall:
    """An in-place step (upscale/audio) on a completed generation.

    Whether it was accepted is read off the generation itself: it left the completed
    state, or its video is no longer the one it had before the step was sent.
    """
    creates = client.with_options(max_retries=0).generations
    if step == "upscale":
        send_step = lambda: creates.upscale(generation_id, resolution=request.upscale)  # noqa: E731
    else:
        send_step = lambda: creates.audio(generation_id, prompt=request.audio)  # noqa: E731

    def accepted(prior: str | None) -> str | None:
        now = client.generations.get(generation_id)
        changed = now.state in ("queued", "dreaming") or now.assets.video != prior
        return generation_id if changed else None

    def send(prior: str | None) -> str:
        return create_once(send_step, client, shot_id=shot_id, classify=dream_machine_error,
                           reconcile=lambda _since: accepted(prior), before_send=before_create)

    return PaidCall(send=send, recover=lambda _since, prior: accepted(prior),
                    prepare=lambda: client.generations.get(generation_id).assets.video)


_STATES = {"completed": "completed", "failed": "failed"}


class DreamMachine:
    """The ``Provider`` of the Dream Machine API."""

    api = DREAM_MACHINE_API

    def __init__(self, client: lumaai.LumaAI, image_url: Callable[[Path], str] | None = None):
        self.client = client
        self.image_url = image_url

    def classify(self, exc: BaseException):
        return dream_machine_error(exc)

    def is_not_found(self, exc: BaseException) -> bool:
        return isinstance(exc, lumaai.NotFoundError)

    def mark_exhausted(self) -> None:
        """The Dream Machine API reports no budget state (an empty balance refuses creates)."""

    def poll(self, generation_id: str) -> Polled:
        generation = self.client.generations.get(generation_id)
        state = generation.state or "queued"
        video = generation.assets.video if generation.assets else None
        return Polled(state=_STATES.get(state, "pending"), detail=state, url=video,
                      failure_reason=generation.failure_reason)

    def base_call(self, request: GenerationRequest, ledger: Ledger, shot_id: str,
                  before_create: Callable[[], None] | None) -> PaidCall:
        return base_call(request, self.client, ledger, shot_id, self.image_url, before_create)

    def step_call(self, step: str, request: GenerationRequest, generation_id: str, shot_id: str,
                  before_create: Callable[[], None] | None) -> PaidCall:
        return step_call(step, request, generation_id, self.client, shot_id, before_create)
