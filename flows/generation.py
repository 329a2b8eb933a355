"""Generating every shot of a plan: independent shots at once, extensions after their source.

Moderation refusals follow the list's ``on_moderation`` policy: ``fail`` the render,
``skip`` the shot, or put a ``placeholder`` slate in its place. A shot that builds on a
refused shot cannot be generated and fails with a message that says so.
"""

from __future__ import annotations

from prefect import get_run_logger
from pydantic import BaseModel
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed

from reelflow import _progress
from reelflow.errors import GenerationFailed, ModerationRefused
from reelflow.flows.observe import emit
from reelflow.flows.plan import RenderPlan
from reelflow.tasks.luma import generate_clip
from reelflow.tasks.models import Clip

__all__ = ["Refused", "generate_all"]


class Refused(BaseModel):
    """A shot the API refused on moderation grounds."""

    shot_id: str
    reason: str


def generate_all(plan: RenderPlan, *, credentials, store, image_url, on_moderation: str,
                 sequence: str) -> dict[str, Clip | Refused]:
    """Submit every generation (bounded by the flow's task runner) and collect the clips.

    A progress artifact follows the shots as they finish; each shot emits
    ``reelflow.shot.generated`` or ``reelflow.shot.failed``.
    """
    log = get_run_logger()
    shots = [s for s in plan.shots if s.kind == "generate"]
    shot_of_key = {s.request.cache_key(): s.id for s in shots}
    futures = {}

    def submit(shot, request):
        task = generate_clip.with_options(task_run_name=f"generate[{shot.id}]",
                                          tags=[f"model:{request.model}", f"sequence:{sequence}",
                                                f"profile:{plan.profile}"])
        futures[shot.id] = task.submit(request, shot_id=shot.id, credentials=credentials,
                                       store=store, image_url=image_url)

    progress = create_progress_artifact(0.0, description=f"{sequence}: shots generated")

    for shot in shots:  # independent shots first, all at once
        if not shot.request.upstream_keys():
            submit(shot, shot.request)
    for shot in _dependents_in_order(shots, shot_of_key):
        ids = {}
        for key in shot.request.upstream_keys():
            upstream = futures[shot_of_key[key]].result(raise_on_failure=False)
            if not isinstance(upstream, Clip):
                raise GenerationFailed(f"shot {shot.id} builds on shot {shot_of_key[key]}, "
                                       "which has no clip", shot_id=shot.id)
            ids[key] = upstream.generation_id
        submit(shot, shot.request.with_generation_ids(ids))
    shot_of_future = {future.task_run_id: shot_id for shot_id, future in futures.items()}
    for done, future in enumerate(as_completed(list(futures.values())), 1):
        shot_id = shot_of_future[future.task_run_id]
        _report(future, shot_id, sequence, on_moderation, log)
        update_progress_artifact(progress, 100.0 * done / max(len(futures), 1))
    results: dict[str, Clip | Refused] = {}
    for shot_id, future in futures.items():  # every paid clip has landed: now surface failures
        try:
            results[shot_id] = future.result()
        except ModerationRefused as refused:
            if on_moderation == "fail":
                raise
            results[shot_id] = Refused(shot_id=shot_id, reason=refused.failure_reason or "")
    return results


def _report(future, shot_id: str, sequence: str, on_moderation: str, log) -> None:
    """One log line and one event per finished shot."""
    try:
        clip = future.result()
    except GenerationFailed as failed:
        policy = on_moderation if isinstance(failed, ModerationRefused) else "fail"
        _progress.shot_state(shot_id, "failed", detail=failed.failure_reason or str(failed))
        log.warning("Shot %s failed: %s (policy: %s)", shot_id, failed.failure_reason or failed, policy)
        emit("reelflow.shot.failed", sequence, shot_id, reason=failed.failure_reason or str(failed),
             generation_id=failed.generation_id, moderation=isinstance(failed, ModerationRefused),
             policy=policy)
        return
    except Exception as exc:  # noqa: BLE001 - reported here, raised by the caller
        _progress.shot_state(shot_id, "failed", detail=str(exc))
        emit("reelflow.shot.failed", sequence, shot_id, reason=str(exc), policy="fail")
        return
    emit("reelflow.shot.generated", sequence, shot_id, generation_id=clip.generation_id,
         paid=clip.paid, cost_usd=clip.cost_usd, sha256=clip.sha256)


def _dependents_in_order(shots, shot_of_key):
    """Shots with upstream references, each after the shots it builds on."""
    done = {s.id for s in shots if not s.request.upstream_keys()}
    pending = [s for s in shots if s.request.upstream_keys()]
    while pending:
        ready = [s for s in pending if all(shot_of_key[k] in done for k in s.request.upstream_keys())]
        for shot in ready:
            yield shot
            done.add(shot.id)
        pending = [s for s in pending if s not in ready]
        if not ready:  # validation rejects cycles; this guards the loop all the same
            raise GenerationFailed("shot references form a cycle")
