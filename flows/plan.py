"""From a validated shot list to per-shot generation requests, costs and cache state.

Planning imports neither Prefect nor the SDK: `reelflow plan` and the checks
before `render` answer in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from reelflow.errors import ShotListError
from reelflow.flows.shotlist import Shot, ShotList
from reelflow.tasks._ledger import Ledger
from reelflow.tasks.models import GenerationRequest
from reelflow.tasks.store import ClipStore

__all__ = ["PROFILES", "RenderPlan", "ShotPlan", "check_supported", "make_plan"]

Profile = Literal["draft", "final"]
PROFILES: tuple[str, ...] = ("draft", "final")

#: Drafts swap every generated shot to the cheap model at the smallest size.
DRAFT_MODEL, DRAFT_RESOLUTION = "ray-flash-2", "540p"

#: Shot fields the schema accepts whose behaviour is not built yet.
_UNSUPPORTED_SHOT_FIELDS = ("start", "end", "upscale", "audio")


class ShotPlan(BaseModel):
    """What rendering one shot will take."""

    id: str
    index: int
    kind: Literal["generate", "card"]
    model: str | None = None
    resolution: str | None = None
    duration: str | None = None
    length_s: float
    request: GenerationRequest | None = None
    status: Literal["cached", "submitted", "to generate", "card"]
    cost_usd: float = 0.0


class RenderPlan(BaseModel):
    """The whole plan: shots in order, output path, and the spend still ahead."""

    source: Path
    profile: str
    output: Path
    shots: list[ShotPlan]

    @property
    def cost_usd(self) -> float:
        """What this run would still pay (shots not already cached or submitted)."""
        return round(sum(s.cost_usd for s in self.shots if s.status == "to generate"), 2)


def check_supported(shotlist: ShotList) -> None:
    """Refuse fields whose behaviour is not built yet, before anything is spent."""
    name = shotlist.source.name
    problems = []
    for shot in shotlist.shots:
        for field in _UNSUPPORTED_SHOT_FIELDS:
            if getattr(shot, field, None):
                problems.append(f"{name}: shot {shot.index} ({shot.id}): {field}: "
                                f"not supported yet: {field} in shot {shot.id}")
    if problems:
        raise ShotListError(problems)


def request_for(shot: Shot, profile: str) -> GenerationRequest:
    """The normalised paid request for a generated shot under a profile."""
    draft = profile == "draft"
    return GenerationRequest(
        model=DRAFT_MODEL if draft else shot.model,
        prompt=shot.prompt,
        aspect_ratio=shot.aspect_ratio,
        resolution=DRAFT_RESOLUTION if draft else shot.resolution,
        duration=shot.duration,
        loop=bool(shot.loop),
        concepts=tuple(shot.camera or ()),
        take=shot.take,
    )


def output_path(shotlist: ShotList, profile: str, out: Path | None = None) -> Path:
    """The delivery path: --out, else the list's, with drafts beside finals (never over them)."""
    if out is not None:
        return Path(out).resolve()
    path = shotlist.output.path
    return path.with_name(f"{path.stem}.draft{path.suffix}") if profile == "draft" else path


def make_plan(shotlist: ShotList, profile: str = "final", *, out: Path | None = None,
              ledger: Ledger | None = None, store: ClipStore | None = None) -> RenderPlan:
    """Plan every shot: its request, estimated cost and whether it is already paid for."""
    if profile not in PROFILES:
        raise ShotListError([f"{shotlist.source.name}: profile: {profile!r} is not one of draft, final"])
    ledger, store = ledger or Ledger.default(), store or ClipStore.default()
    shots = []
    for shot in shotlist.shots:
        if shot.is_card:
            shots.append(ShotPlan(id=shot.id, index=shot.index, kind="card",
                                  length_s=shot.length_s, status="card"))
            continue
        request = request_for(shot, profile)
        entry = ledger.read(request.cache_key())
        if entry and entry.sha256 and store.has(entry.sha256):
            status = "cached"
        elif entry and entry.generation_id:
            status = "submitted"
        else:
            status = "to generate"
        shots.append(ShotPlan(id=shot.id, index=shot.index, kind="generate", model=request.model,
                              resolution=request.resolution, duration=request.duration,
                              length_s=shot.length_s, request=request, status=status,
                              cost_usd=request.estimated_cost()))
    return RenderPlan(source=shotlist.source, profile=profile,
                      output=output_path(shotlist, profile, out), shots=shots)
