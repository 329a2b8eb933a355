"""The Dream Machine API behind the generation seam: ray-2, ray-flash-2, upscale, audio (``lumaai``).

Its paid calls (``_calls.base_call`` / ``step_call``) reconcile a lost create answer
through the account's list; local keyframe images reach it as URLs (``image_url``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lumaai

from reelflow.spec import DREAM_MACHINE_API
from reelflow.tasks._calls import PaidCall, base_call, step_call
from reelflow.tasks._create import dream_machine_error
from reelflow.tasks._ledger import Ledger
from reelflow.tasks._providers import Polled
from reelflow.tasks.models import GenerationRequest

__all__ = ["DreamMachine"]

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
