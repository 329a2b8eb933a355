"""The paid calls a step can make, and how each is found again after a lost answer.

A new generation is found by its request among the account's newest generations; an
in-place step (upscale, audio) by the generation itself (it left the completed state,
or its video changed). ``_generate._paid_step`` decides when to send, recover or wait.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import lumaai

from reelflow.tasks._create import create_once, find_matching
from reelflow.tasks._ledger import Ledger
from reelflow.tasks.models import GenerationRequest

__all__ = ["PaidCall", "base_call", "step_call"]


@dataclass(frozen=True)
class PaidCall:
    """How one paid step is sent, and found again after a run died while sending it.

    ``prepare()`` reads what must be known before the send (an in-place step's current
    video URL; None for a new generation), which is recorded with the send's time.
    ``send(prior)`` creates once and returns the id (``create_once``). ``recover(since,
    prior)`` is the id of the generation a send interrupted by a crash made, or None.
    Sends sharing a ``one_at_a_time`` key (takes of one request: identical payloads) go
    out one after another, so no reconciliation can mistake one for the other.
    """

    send: Callable[[str | None], str]
    recover: Callable[[datetime, str | None], str | None]
    prepare: Callable[[], str | None] = lambda: None
    one_at_a_time: str | None = None


def base_call(request: GenerationRequest, client: lumaai.LumaAI, ledger: Ledger, shot_id: str,
              image_url: Callable[[Path], str] | None,
              before_create: Callable[[], None] | None) -> PaidCall:
    """A new generation: found again by its request among the account's newest."""
    creates = client.with_options(max_retries=0).generations

    def payload() -> dict[str, Any]:
        urls = {name: image_url(frame.path) for name in ("frame0", "frame1")
                if (frame := getattr(request, name)) is not None and frame.path is not None}
        return request.api_kwargs(urls)

    def find(kwargs: dict[str, Any], since: datetime) -> str | None:
        return find_matching(client, kwargs, since, ledger.generation_ids())

    def send(_prior: str | None) -> str:
        kwargs = payload()
        return create_once(lambda: creates.video.create(**kwargs), client, shot_id=shot_id,
                           reconcile=lambda since: find(kwargs, since), before_send=before_create)

    return PaidCall(send=send, recover=lambda since, _prior: find(payload(), since),
                    one_at_a_time="send-" + request.model_copy(update={"take": 1}).cache_key())


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
