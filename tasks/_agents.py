"""The Agents API behind the generation seam: ray-3.2 and uni-1 stills (``luma-agents``).

What differs from the Dream Machine API:

* local inputs (keyframe images, an edit's source clip) are uploaded through the Files
  API before the intent to send is recorded, and referenced by ``file_id``; generation
  chains (extend, edit, reframe) by ``generation_id``; https images by ``url``;
* there is no list route, so a create whose answer is lost cannot be looked up: the
  ledger's "sending" record stays, and this shot stops with ``AnswerLost`` (the user
  adopts the generation or accepts paying again: ``reelflow resolve``). A connection
  that was never made (refused) sent nothing and is tried again;
* a generation that failed with ``budget_exhausted`` stops every later create to the
  same account in this process before it is sent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import luma_agents

from reelflow.errors import AnswerLost, GenerationFailed, NothingSent
from reelflow.spec import AGENTS_API
from reelflow.tasks._agents_files import AgentsFiles, media_type
from reelflow.tasks._calls import PaidCall
from reelflow.tasks._create import create_once, status_kind
from reelflow.tasks._ledger import Ledger
from reelflow.tasks._providers import Polled
from reelflow.tasks.models import GenerationRequest, Keyframe

__all__ = ["Agents", "agents_error", "payload"]

_PENDING = ("queued", "processing")
#: Accounts (base URLs) whose budget a generation reported exhausted, in this process.
_exhausted: set[str] = set()
_exhausted_lock = threading.Lock()


def agents_error(exc: BaseException):
    """How a ``luma_agents`` error reads (``_providers.ErrorKind``). A connection that was
    never established sent nothing; any other connection error, a timeout, a 5xx, 408 or
    409 leaves the create's outcome unknown."""
    answered = status_kind(exc, luma_agents)
    if answered is not None:
        return answered
    if isinstance(exc, luma_agents.APITimeoutError):
        return "unknown"
    if isinstance(exc, luma_agents.APIConnectionError):
        cause = exc.__cause__
        return "not_sent" if isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout)) \
            else "unknown"
    return None


def _ref(frame: Keyframe, refs: dict[Keyframe, dict[str, str]]) -> dict[str, str]:
    if frame.kind == "generation":
        return {"generation_id": frame.require_generation_id()}
    if frame.path is None:
        return {"url": frame.url}
    return refs[frame]


def payload(request: GenerationRequest, refs: dict[Keyframe, dict[str, str]]) -> dict[str, Any]:
    """Keyword arguments for ``client.generations.create`` (``refs``: uploaded local inputs)."""
    if request.kind == "image":  # a uni-1 still (PNG), with its reference images
        kwargs = {"model": request.model, "prompt": request.prompt, "type": "image",
                  "aspect_ratio": request.aspect_ratio, "output_format": "png"}
        if request.refs:
            kwargs["image_ref"] = [_ref(ref, refs) for ref in request.refs]
        return kwargs
    video: dict[str, Any] = {"resolution": request.resolution}
    kwargs: dict[str, Any] = {"model": request.model, "prompt": request.prompt,
                              "type": request.kind, "video": video}
    if request.kind == "video":
        kwargs["aspect_ratio"] = request.aspect_ratio
        video["duration"] = request.duration
    elif request.kind == "video_reframe":
        kwargs["aspect_ratio"] = request.aspect_ratio
        kwargs["source"] = _ref(request.reframe, refs)
    else:
        kwargs["source"] = {**_ref(request.edit, refs), **(
            {"media_type": media_type(request.edit.path)} if request.edit.path else {})}
        if request.strength:
            video["edit"] = {"strength": request.strength}
    for name, value in (("loop", request.loop), ("hdr", request.hdr),
                        ("exr_export", request.exr)):
        if value:
            video[name] = True
    for name, frame in (("start_frame", request.frame0), ("end_frame", request.frame1)):
        if frame is not None:
            video[name] = _ref(frame, refs)
    if request.keyframes:
        video["keyframes"] = [_ref(k.frame, refs) for k in request.keyframes]
        video["keyframe_indexes"] = [k.index for k in request.keyframes]
    return kwargs


class Agents:
    """The ``Provider`` of the Agents API."""

    api = AGENTS_API

    def __init__(self, client: luma_agents.Luma):
        self.client = client
        self.account = str(client.base_url)

    def classify(self, exc: BaseException):
        return agents_error(exc)

    def is_not_found(self, exc: BaseException) -> bool:
        return isinstance(exc, luma_agents.NotFoundError)

    def poll(self, generation_id: str) -> Polled:
        generation = self.client.generations.get(generation_id)
        outputs = generation.output or []
        url = next((o.url for o in outputs if o.type == "video"), outputs[0].url if outputs else None)
        # (a uni-1 still's only output is its image)
        state = "pending" if generation.state in _PENDING else generation.state
        exr_url = next((o.url for o in outputs if o.type == "exr"), None)
        return Polled(state=state, detail=generation.state, url=url, exr_url=exr_url,
                      failure_code=generation.failure_code, failure_reason=generation.failure_reason)

    def mark_exhausted(self) -> None:
        """The account's budget is spent: no further create to it from this process."""
        with _exhausted_lock:
            _exhausted.add(self.account)

    def base_call(self, request: GenerationRequest, ledger: Ledger, shot_id: str,
                  before_create: Callable[[], None] | None) -> PaidCall:
        """A new generation. Local inputs are uploaded in ``prepare`` (before the intent
        is recorded); a lost answer raises ``AnswerLost`` instead of being sent again."""
        creates = self.client.with_options(max_retries=0).generations
        files = AgentsFiles(self.client, ledger)
        refs: dict[Keyframe, dict[str, str]] = {}
        key = request.cache_key()

        def prepare() -> None:
            for frame in request.inputs():
                if frame.path is not None and frame not in refs:
                    refs[frame] = {"file_id": files.file_id(frame.path, frame.sha256)}
            return None

        def lost(_since: datetime | None = None, _prior: str | None = None) -> str | None:
            entry = ledger.read(key)
            since = entry.sending_since if entry and entry.sending_since else "an unknown time"
            raise AnswerLost(
                f"shot {shot_id}: the ray-3.2 create sent at {since} got no answer, and the "
                "Agents API cannot be asked whether it was made (it has no list route), so "
                f"nothing is sent again (ledger record {ledger.where(key)}). If Luma's "
                f"dashboard shows the generation: reelflow resolve {shot_id} --generation-id ID; "
                f"to pay for a new one instead: reelflow resolve {shot_id} --resend",
                shot_id=shot_id)

        def send(_prior: str | None) -> str:
            if self.account in _exhausted:
                raise NothingSent(f"shot {shot_id}: not sent: the Agents API account's budget "
                                  "is exhausted (a generation failed with budget_exhausted)",
                                  shot_id=shot_id, failure_code="budget_exhausted")
            kwargs = payload(request, refs)
            return create_once(lambda: creates.create(**kwargs), shot_id=shot_id, reconcile=lost,
                               before_send=before_create, classify=agents_error)

        return PaidCall(send=send, recover=lost, prepare=prepare)

    def step_call(self, step: str, request: GenerationRequest, generation_id: str, shot_id: str,
                  before_create: Callable[[], None] | None) -> PaidCall:
        raise GenerationFailed(f"shot {shot_id}: {step} is a Dream Machine step; ray-3.2 has none",
                               shot_id=shot_id)
