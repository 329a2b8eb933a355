"""The generation seam: what each Luma API gives the shared machinery, and which one serves a model.

One paid generation goes request -> ledger record before the send -> paid create ->
wait -> download -> clip (``_generate``), the same for every model. What differs
between the two APIs sits behind ``Provider``:

* ``DreamMachine`` (``_dream_machine``, the ``lumaai`` SDK): ray-2, ray-flash-2, upscale
  and audio; a lost create answer is looked up in the account's list and adopted;
* ``Agents`` (``_agents``, the ``luma-agents`` SDK): ray-3.2 (and uni-1 stills); local
  inputs go through the Files API; a lost create answer cannot be looked up (no list
  route), so it is never sent again without the user's word (``AnswerLost``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from reelflow.tasks._calls import PaidCall
from reelflow.tasks._ledger import Ledger
from reelflow.tasks.models import GenerationRequest

if TYPE_CHECKING:
    from reelflow.tasks.luma import LumaCredentials

__all__ = ["ErrorKind", "Polled", "Provider", "provider_for"]

#: How a failed API call reads: ``rate_limited`` (429: nothing made, wait and send again),
#: ``not_sent`` (the request never left: send again), ``unknown`` (it may have been made),
#: ``refused`` (4xx: nothing made, sending again will not help).
ErrorKind = Literal["rate_limited", "not_sent", "unknown", "refused"]


@dataclass(frozen=True)
class Polled:
    """One look at a generation, in the seam's terms."""

    state: Literal["pending", "completed", "failed"]
    detail: str                       # the API's own state word, for the log
    url: str | None = None            # the finished output (a video; a still for uni-1)
    exr_url: str | None = None        # ray-3.2 with exr_export: the EXR export (a ZIP of frames)
    failure_code: str | None = None   # the Agents API's failure_code (None on Dream Machine)
    failure_reason: str | None = None


class Provider(Protocol):
    """What the seam needs from one Luma API."""

    api: str

    def classify(self, exc: BaseException) -> ErrorKind | None:
        """How an exception from this API's SDK reads; None: not an API error."""

    def poll(self, generation_id: str) -> Polled:
        """The generation's state now (raises the SDK's errors)."""

    def is_not_found(self, exc: BaseException) -> bool:
        """True for "no such generation on this account" (404)."""

    def mark_exhausted(self) -> None:
        """A generation failed ``budget_exhausted``: send no further create to this account."""

    def base_call(self, request: GenerationRequest, ledger: Ledger, shot_id: str,
                  before_create: Callable[[], None] | None) -> PaidCall:
        """The paid create of ``request``'s base generation."""

    def step_call(self, step: str, request: GenerationRequest, generation_id: str, shot_id: str,
                  before_create: Callable[[], None] | None) -> PaidCall:
        """An in-place paid step (upscale, audio) on a completed generation."""


def provider_for(request: GenerationRequest, credentials: LumaCredentials, *, store=None,
                 image_url: Callable[[Path], str] | None = None) -> Provider:
    """The provider of the API serving ``request.model``, with ``credentials``' client.

    ``image_url`` (Dream Machine) turns a local image into a URL the API fetches; the
    Agents API uploads local inputs through its Files API instead.
    """
    from reelflow.spec import AGENTS_API

    if request.api == AGENTS_API:
        from reelflow.tasks._agents import Agents

        return Agents(credentials.get_agents_client())
    from reelflow.tasks._dream_machine import DreamMachine

    return DreamMachine(credentials.get_client(), image_url)
