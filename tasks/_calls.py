"""The paid calls a step can make, and how each is found again after a lost answer.

A new generation is found by its exact request among the account's newest generations,
and is claimed in the ledger for the request's key before it is adopted or recorded
(``Ledger.claim``), so two requests with one payload (takes) never share a generation;
an in-place step (upscale, audio) is found by the generation itself (it left the
completed state, or its video changed). ``_generate._paid_step`` decides when to send,
recover or wait.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import lumaai

from reelflow.errors import GenerationFailed
from reelflow.tasks._create import CLOCK_SKEW_S, MAX_CREATE_ATTEMPTS, create_once, find_matching
from reelflow.tasks._ledger import Ledger
from reelflow.tasks.models import GenerationRequest

__all__ = ["PaidCall", "base_call", "step_call"]

_log = logging.getLogger("reelflow.tasks.create")


@dataclass(frozen=True)
class PaidCall:
    """How one paid step is sent, and found again after a run died while sending it.

    ``prepare()`` reads what must be known before the send (an in-place step's current
    video URL; None for a new generation), which is recorded with the send's time.
    ``send(prior)`` creates once and returns the id (``create_once``). ``recover(since,
    prior)`` is the id of the generation a send interrupted by a crash made, or None.
    Sends sharing a ``one_at_a_time`` key (takes of one request: identical payloads) go
    out one after another from this machine; across machines the ledger's claims keep
    them apart. ``find_lost()`` is the id of the generation made for this request when
    its ledger record is unreadable (any time back), or None when it made none; a step
    without one (in-place steps: the account cannot tell) is never sent again then.
    """

    send: Callable[[str | None], str]
    recover: Callable[[datetime, str | None], str | None]
    prepare: Callable[[], str | None] = lambda: None
    one_at_a_time: str | None = None
    find_lost: Callable[[], str | None] | None = None


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
        return create_once(send_step, client, shot_id=shot_id,
                           reconcile=lambda _since: accepted(prior), before_send=before_create)

    return PaidCall(send=send, recover=lambda _since, prior: accepted(prior),
                    prepare=lambda: client.generations.get(generation_id).assets.video)
