"""From a validated shot list to per-shot generation requests, costs, cache state and frames.

Planning imports neither Prefect nor the SDK: `reelflow plan` and the checks
before `render` answer in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from reelflow.errors import BudgetExceeded, ShotListError
from reelflow.spec import AGENTS_API, DREAM_MACHINE_API, MODEL_API
from reelflow.flows._shotlist_checks import output_problem
from reelflow.flows.shotlist import Shot, ShotList, ShotRef, StillRef
from reelflow.flows.stills import StillPlan, plan_stills, still_keyframe
from reelflow.flows.timeline import frame_timeline, spans_for
from reelflow.tasks._ledger import Ledger
from reelflow.tasks._timeline import TimelineSpan, output_frames
from reelflow.tasks.models import GenerationRequest, Keyframe, PinnedKeyframe
from reelflow.tasks.store import ClipStore, sha256_file

__all__ = ["PROFILES", "PlannedRender", "RenderPlan", "ShotPlan", "make_plan", "plan_render", "plan_table"]

Profile = Literal["draft", "final"]
PROFILES: tuple[str, ...] = ("draft", "final")

#: Drafts swap every Dream Machine shot to the cheap model at the smallest size...
DRAFT_MODEL, DRAFT_RESOLUTION = "ray-flash-2", "540p"
#: ...and keep ray-3.2 shots on ray-3.2 at its 360p draft tier (SDR: no HDR or EXR).
DRAFT_RAY32_RESOLUTION = "360p"



class ShotPlan(BaseModel):
    """What rendering one shot will take."""

    id: str
    index: int
    kind: Literal["generate", "card"]
    model: str | None = None
    resolution: str | None = None
    duration: str | None = None
    length_s: float
    frames: int = Field(default=0, description="Frames it keeps at the output rate.")
    request: GenerationRequest | None = None
    status: Literal["cached", "submitted", "to generate", "card"]
    cost_usd: float = Field(default=0.0, description="Estimated price of the shot, every step.")
    to_pay_usd: float = Field(default=0.0, description="What this run would still pay for it.")
    upscale: str | None = None
    audio: bool = False


class RenderPlan(BaseModel):
    """The whole plan: shots in order, output path, the timeline and the spend still ahead.

    ``timeline`` is what the render assembles, span for span; ``frames`` is how many
    frames that makes at the output rate (checked to fit before any spend).
    """

    source: Path
    profile: str
    output: Path
    shots: list[ShotPlan]
    timeline: list[TimelineSpan] = Field(default_factory=list)
    frames: int = 0
    stills: list[StillPlan] = Field(default_factory=list,
                                    description="The distinct stills to start shots from.")

    @property
    def cost_usd(self) -> float:
        """What this run would still pay (shots not already cached or submitted)."""
        return round(sum(s.to_pay_usd for s in self.shots)
                     + sum(s.to_pay_usd for s in self.stills), 2)


def _keyframe(ref, keys: dict[str, str]) -> Keyframe | None:
    if ref is None:
        return None
    if isinstance(ref, ShotRef):
        return Keyframe(kind="generation", upstream_key=keys[ref.shot], upstream_shot=ref.shot)
    if ref.path is not None:
        kind = "video" if getattr(ref, "video", False) else "image"
        return Keyframe(kind=kind, path=ref.path, sha256=sha256_file(ref.path))
    return Keyframe(kind="image", url=ref.url)


def _frame(shot: Shot, field: str, keys: dict[str, str]) -> Keyframe | None:
    """The start or end frame: an image, a shot, or a still to generate first."""
    ref = getattr(shot, field)
    if isinstance(ref, StillRef):
        return still_keyframe(ref, shot.aspect_ratio, f"{shot.id}.{field}")
    return _keyframe(ref, keys)


def _pinned(shot: Shot, i: int, image, keys: dict[str, str]) -> Keyframe | None:
    """A pinned keyframe's image, or the still to generate for it."""
    if isinstance(image, StillRef):
        return still_keyframe(image, shot.aspect_ratio, f"{shot.id}.keyframes[{i}]")
    return _keyframe(image, keys)


def request_for(shot: Shot, profile: str, keys: dict[str, str] | None = None) -> GenerationRequest:
    """The normalised paid request for a generated shot under a profile.

    ``keys`` maps shot ids to their requests' cache keys, for shots this one extends.
    """
    draft = profile == "draft"
    keys = keys or {}
    model, resolution = shot.model, shot.resolution
    if draft:
        ray32 = MODEL_API[shot.model] == AGENTS_API
        model = shot.model if ray32 else DRAFT_MODEL
        resolution = DRAFT_RAY32_RESOLUTION if ray32 else DRAFT_RESOLUTION
    return GenerationRequest(
        model=model,
        prompt=shot.prompt,
        aspect_ratio=shot.aspect_ratio,
        resolution=resolution,
        duration=shot.duration if isinstance(shot.duration, str) else f"{shot.duration:g}s",
        loop=bool(shot.loop),
        concepts=tuple(shot.camera or ()),
        take=shot.take,
        frame0=_frame(shot, "start", keys),
        frame1=_frame(shot, "end", keys),
        upscale=None if draft else shot.upscale,
        audio=shot.audio,
        hdr=shot.hdr and not draft,
        exr=shot.exr and not draft,
        keyframes=tuple(PinnedKeyframe(index=k.index, frame=_pinned(shot, i, k.image, keys))
                        for i, k in enumerate(shot.keyframes)),
        edit=_keyframe(shot.edit.source, keys) if shot.edit else None,
        strength=shot.edit.strength if shot.edit else None,
        reframe=_keyframe(shot.reframe, keys) if shot.reframe else None,
    )


def requests_for(shotlist: ShotList, profile: str) -> dict[str, GenerationRequest]:
    """Every generated shot's request, upstream shots first (their keys feed extensions)."""
    requests: dict[str, GenerationRequest] = {}
    for shot in shotlist.generation_order():
        keys = {sid: req.cache_key() for sid, req in requests.items()}
        requests[shot.id] = request_for(shot, profile, keys)
    return requests


def _status(request: GenerationRequest, ledger: Ledger, store: ClipStore) -> tuple[str, float]:
    """``cached`` / ``submitted`` / ``to generate``, and what is still to pay."""
    if ledger.is_stored(request.final_key(), store):
        return "cached", 0.0
    to_pay, started = 0.0, False
    for key, step in request.paid_keys():
        entry = ledger.read(key)
        if entry and entry.generation_id:
            started = True
        if not (entry and (entry.generation_id or (entry.sha256 and store.has(entry.sha256)))):
            to_pay += request.estimated_cost(step)
    return ("submitted" if started else "to generate"), round(to_pay, 2)


def output_path(shotlist: ShotList, profile: str, out: Path | None = None) -> Path:
    """The delivery path: --out, else the list's, with drafts beside finals (never over them)."""
    if out is not None:
        return Path(out).resolve()
    path = shotlist.output.path
    return path.with_name(f"{path.stem}.draft{path.suffix}") if profile == "draft" else path


def make_plan(shotlist: ShotList, profile: str = "final", *, out: Path | None = None,
              ledger: Ledger | None = None, store: ClipStore | None = None) -> RenderPlan:
    """Plan every shot: its request, estimated cost and whether it is already paid for.

    Raises:
        ShotListError: an unknown profile, or an output path that cannot be written.
        StoreNotConfigured, StoreUnavailable: an S3 store that cannot be used (see
            ``ClipStore.check_access``): found here, before any spend.
    """
    if profile not in PROFILES:
        raise ShotListError([f"{shotlist.source.name}: profile: {profile!r} is not one of draft, final"])
    output = output_path(shotlist, profile, out)
    if problem := output_problem(output):
        raise ShotListError([f"{shotlist.source.name}: output: {problem}"])
    store = store or ClipStore.default()
    store.check_access()                 # an S3 store answers one LIST before anything else
    ledger = ledger or Ledger.for_store(store)
    slots = frame_timeline(shotlist)      # before any request: a list that cannot be cut costs nothing
    requests = requests_for(shotlist, profile)
    shots = []
    for shot, slot in zip(shotlist.shots, slots):
        if shot.is_card:
            shots.append(ShotPlan(id=shot.id, index=shot.index, kind="card",
                                  length_s=shot.length_s, frames=slot.frames, status="card"))
            continue
        request = requests[shot.id]
        status, to_pay = _status(request, ledger, store)
        shots.append(ShotPlan(id=shot.id, index=shot.index, kind="generate", model=request.model,
                              resolution=request.resolution, duration=request.duration,
                              length_s=shot.length_s, frames=slot.frames, request=request,
                              status=status, cost_usd=request.total_cost(), to_pay_usd=to_pay,
                              upscale=request.upscale, audio=request.audio is not None))
    return RenderPlan(source=shotlist.source, profile=profile,
                      output=output, shots=shots,
                      timeline=spans_for(shotlist), frames=output_frames(slots),
                      stills=plan_stills(shotlist, ledger, store))


@dataclass(frozen=True)
class PlannedRender:
    """A shot list planned once, against the store its render uses.

    Whoever starts a render plans it: the CLI (before Prefect, so problems are exit 2)
    hands it to the flow with ``flows.render.render_planned``; a flow started any other
    way (a deployment, ``render_sequence`` called directly) makes its own.
    """

    shotlist: ShotList
    plan: RenderPlan
    store: ClipStore
    store_block: str | None = None


def plan_render(shotlist: ShotList, profile: str = "final", *, out: Path | None = None,
                store_block: str | None = None) -> PlannedRender:
    """``make_plan`` against the render's store: the saved ``ClipStoreBlock`` ``store_block``
    (read from Prefect's API), else ``ClipStore.default()``."""
    if store_block:
        from reelflow.tasks.store_block import store_from_block  # Prefect: only for a block

        store = store_from_block(store_block)
    else:
        store = ClipStore.default()
    return PlannedRender(shotlist, make_plan(shotlist, profile, out=out, store=store), store,
                         store_block)


def check_budget(plan: RenderPlan, budget_usd: float | None) -> None:
    """Refuse, before any spend, a plan whose remaining cost exceeds ``budget_usd``.

    Raises:
        BudgetExceeded: a ``ShotListError`` (exit 2) with the one line to print.
    """
    if budget_usd is not None and plan.cost_usd > budget_usd:
        raise BudgetExceeded(f"{plan.source.name}: budget: this render would pay ${plan.cost_usd:.2f}, "
                             f"more than the budget of ${budget_usd:.2f} (see `reelflow plan`)",
                             cost_usd=plan.cost_usd, budget_usd=budget_usd)


def local_images(plan: RenderPlan) -> list[Keyframe]:
    """Local keyframe images and stills (stored once made) of the Dream Machine shots still
    to generate (they need fetchable URLs; the Agents API takes local inputs through its
    Files API)."""
    return [frame for shot in plan.shots if shot.request is not None and shot.status != "cached"
            and shot.request.api == DREAM_MACHINE_API
            for frame in (shot.request.frame0, shot.request.frame1)
            if frame is not None and (frame.path is not None or frame.kind == "still")]


def plan_table(plan: RenderPlan) -> str:
    """The plan as `reelflow plan` prints it: per shot its list price and what this run would
    still pay (a cached shot: $0.00), then the total to spend."""
    lines = [f"{'shot':<20} {'model':<12} {'res':<6} {'dur':<5} {'status':<12} {'price':>7} {'to pay':>7}"]
    for s in plan.shots:
        lines.append(f"{s.id:<20} {s.model or '-':<12} {s.resolution or '-':<6} "
                     f"{s.duration or f'{s.length_s:g}s':<5} {s.status:<12} "
                     f"{f'${s.cost_usd:.2f}':>7} {f'${s.to_pay_usd:.2f}':>7}")
    for still in plan.stills:   # a paid image each (priced to the tenth of a cent)
        lines.append(f"{still.label:<20} {still.model:<12} {'still':<6} {'-':<5} {still.status:<12} "
                     f"{f'${still.cost_usd:.3f}':>7} {f'${still.to_pay_usd:.3f}':>7}")
    lines.append(f"total to spend: ${plan.cost_usd:.2f} ({plan.profile}) -> {plan.output}")
    return "\n".join(lines)
