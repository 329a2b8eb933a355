"""Storyboard stills in a render: planned with the shots, generated first, then used as frames.

* ``still_keyframe`` turns a shot's ``StillRef`` into the request's keyframe: its key is
  the still request's key (prompt, model, the shot's aspect ratio, each reference
  image's content hash), so a shot's key changes exactly when its still's does.
* ``plan_stills`` lists the distinct stills of a plan (one still used by several shots is
  one paid image) with their status and price, for ``plan``, ``--budget`` and the summary.
* ``generate_stills`` makes the stills still missing (concurrently, each a paid,
  ledgered step through the seam: ``tasks.stills.generate_still``), attaches a table of
  them to the flow run and returns the plan with every still frame filled in (the
  stored image, which then reaches either API like a local image). A still refused on
  moderation grounds follows the moderation policy for the shots that start from it.

Planning here imports neither Prefect nor the SDK.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from reelflow.flows.shotlist import ImageRef, ShotList, StillRef
from reelflow.tasks._ledger import Ledger
from reelflow.tasks.models import GenerationRequest, Keyframe
from reelflow.tasks.store import ClipStore, sha256_file

if TYPE_CHECKING:  # (plan imports this module: no Prefect at plan time)
    from reelflow.tasks.luma import LumaCredentials

__all__ = ["StillPlan", "StillResult", "StillsRun", "generate_stills", "plan_stills",
           "still_keyframe", "still_request"]


class StillPlan(BaseModel):
    """One distinct still of a render: what it costs and whether it is paid for."""

    label: str = Field(description="Where it is first used: <shot>.start / <shot>.end.")
    key: str
    model: str
    refs: list[str] = Field(default_factory=list, description="The characters it names.")
    used_by: list[str] = Field(default_factory=list, description="Shots that start or end on it.")
    status: Literal["cached", "submitted", "to generate"]
    cost_usd: float = Field(description="Its list price (per image, plus per reference).")
    to_pay_usd: float = 0.0
    request: GenerationRequest


class StillResult(BaseModel):
    """How one still was produced in this run."""

    label: str
    key: str
    model: str
    status: Literal["paid", "cached", "refused"]
    cost_usd: float = 0.0
    sha256: str | None = None
    path: Path | None = None
    generation_id: str | None = None
    used_by: list[str] = Field(default_factory=list)
    failure_reason: str | None = None


def _reference(image: ImageRef) -> Keyframe:
    if image.path is not None:
        return Keyframe(kind="image", path=image.path, sha256=sha256_file(image.path))
    return Keyframe(kind="image", url=image.url)


def still_request(still: StillRef, aspect_ratio: str) -> GenerationRequest:
    """The paid request of a still (an image model's) for a shot of ``aspect_ratio``."""
    return GenerationRequest(model=still.model, prompt=still.full_prompt, aspect_ratio=aspect_ratio,
                             refs=tuple(_reference(c.image) for c in still.refs))


def still_keyframe(still: StillRef, aspect_ratio: str, label: str) -> Keyframe:
    """The shot request's keyframe for a still (filled in once the still exists)."""
    return Keyframe(kind="still", upstream_key=still_request(still, aspect_ratio).cache_key(),
                    upstream_shot=label)


def plan_stills(shotlist: ShotList, ledger: Ledger, store: ClipStore) -> list[StillPlan]:
    """Every distinct still of the list, in order of first use, with its status."""
    stills: dict[str, StillPlan] = {}
    for shot in shotlist.shots:
        uses = [(field, getattr(shot, field, None)) for field in ("start", "end")]
        uses += [(f"keyframes[{i}]", k.image) for i, k in enumerate(shot.keyframes)]
        for field, still in uses:
            if not isinstance(still, StillRef):
                continue
            request = still_request(still, shot.aspect_ratio)
            key = request.cache_key()
            if key not in stills:
                stills[key] = StillPlan(label=f"{shot.id}.{field}", key=key, model=still.model,
                                        refs=[c.name for c in still.refs], request=request,
                                        cost_usd=request.estimated_cost(),
                                        **_status(request, ledger, store))
            if shot.id not in stills[key].used_by:
                stills[key].used_by.append(shot.id)
    return list(stills.values())


def _status(request: GenerationRequest, ledger: Ledger, store: ClipStore) -> dict:
    if ledger.is_stored(request.cache_key(), store, ".png"):
        return {"status": "cached", "to_pay_usd": 0.0}
    entry = ledger.read(request.cache_key())
    if entry and entry.generation_id:
        return {"status": "submitted", "to_pay_usd": 0.0}
    return {"status": "to generate", "to_pay_usd": request.estimated_cost()}


class StillsRun(BaseModel):
    """The stills of one render: their results, the plan with still frames filled in, and
    the shots that cannot be made because their still was refused."""

    results: list[StillResult]
    plan: object
    refused_shots: dict[str, str] = Field(default_factory=dict, description="Shot -> reason.")

    @property
    def paid_usd(self) -> float:
        """What this run paid for stills."""
        return round(sum(r.cost_usd for r in self.results if r.status == "paid"), 4)


def generate_stills(plan, *, credentials: LumaCredentials, store: ClipStore, sequence: str,
                    on_moderation: str = "fail") -> StillsRun:
    """Make every still of ``plan`` (concurrently; each paid once, ever) and return the plan
    whose shots start from them. Call inside a flow.

    With ``on_moderation`` skip or placeholder, a refused still's shots (and the shots that
    build on them) are left out of the returned plan and listed in ``refused_shots``.

    Raises:
        ModerationRefused: a still was refused and ``on_moderation`` is ``fail``.
    """
    from prefect.futures import wait

    from reelflow.errors import ModerationRefused
    from reelflow.flows.observe import emit, step_name
    from reelflow.tasks.stills import generate_still

    futures = {
        still.key: generate_still.with_options(task_run_name=step_name("still", still.label)).submit(
            still.request, name=still.label, credentials=credentials, store=store)
        for still in plan.stills}
    wait(list(futures.values()))
    results, stored, refused = [], {}, {}
    for still in plan.stills:
        try:
            image = futures[still.key].result()
        except ModerationRefused as exc:
            if on_moderation == "fail":
                raise
            refused[still.key] = f"its still {still.label} was refused: {exc.failure_reason or exc}"
            results.append(StillResult(status="refused", failure_reason=exc.failure_reason,
                                       **_common(still)))
            continue
        stored[still.key] = (image.path, image.sha256)
        results.append(StillResult(status="paid" if image.paid else "cached", sha256=image.sha256,
                                   path=image.path, generation_id=image.generation_id,
                                   cost_usd=image.cost_usd if image.paid else 0.0, **_common(still)))
        emit("reelflow.still.generated" if image.paid else "reelflow.still.cached", sequence,
             still.label, generation_id=image.generation_id, paid=image.paid,
             cost_usd=image.cost_usd if image.paid else 0.0, used_by=still.used_by)
    if plan.stills:
        _publish(results, sequence)
    filled, left_out = _filled(plan, stored, refused)
    return StillsRun(results=results, plan=filled, refused_shots=left_out)


def _common(still: StillPlan) -> dict:
    return {"label": still.label, "key": still.key, "model": still.model, "used_by": still.used_by}


def _filled(plan, stored: dict[str, tuple[Path, str]], refused: dict[str, str]):
    """The plan with still frames filled in, without the shots a refused still stops."""
    left_out: dict[str, str] = {}
    keys = {s.request.cache_key(): s.id for s in plan.shots if s.request is not None}
    changed = True
    while changed:                       # a refused still stops its shots and what builds on them
        changed = False
        for shot in plan.shots:
            if shot.request is None or shot.id in left_out:
                continue
            reason = next((refused[k] for k in shot.request.still_keys() if k in refused), None) \
                or next((f"it builds on shot {keys[k]}, whose still was refused"
                         for k in shot.request.upstream_keys() if keys.get(k) in left_out), None)
            if reason:
                left_out[shot.id] = reason
                changed = True
    shots = [s if s.request is None or not s.request.still_keys()
             else s.model_copy(update={"request": s.request.with_stills(stored)})
             for s in plan.shots if s.id not in left_out]
    return plan.model_copy(update={"shots": shots}), left_out


def _publish(results: list[StillResult], sequence: str) -> None:
    """The stills as a table artifact on the flow run (what each cost, which shots use it)."""
    from prefect.artifacts import create_table_artifact

    from reelflow.flows.report import artifact_key

    create_table_artifact(key=artifact_key("stills", sequence), description=f"Stills of {sequence} (USD)", table=[
        {"still": r.label, "model": r.model, "state": r.status, "cost_usd": r.cost_usd,
         "used_by": ", ".join(r.used_by), "generation": r.generation_id or "—",
         "reason": r.failure_reason or ""} for r in results])
