"""Generating every shot of a plan: independent shots at once, extensions after their source.

Moderation refusals follow the list's ``on_moderation`` policy: ``fail`` the render,
``skip`` the shot, or put a ``placeholder`` slate in its place. A refusal the policy
handles is a warning in the log and a task run in the "Refused" state, not an error. A
shot that builds on a refused or failed shot cannot be generated and fails with a
message that says so. Every shot gets an outcome (a Clip, Refused or Failed): the
render decides what to raise once all of them are known, so its story is complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.states import Completed
from pydantic import BaseModel

from reelflow import _progress
from reelflow.errors import GenerationFailed, ModerationRefused
from reelflow.flows.observe import step_name
from reelflow.flows.plan import RenderPlan
from reelflow.tasks._ledger import Ledger
from reelflow.tasks._outputs import VIDEO
from reelflow.tasks.luma import LumaCredentials, generate_clip
from reelflow.flows.shotlist import dependency_order
from reelflow.tasks.models import Clip

__all__ = ["Failed", "Refused", "first_failure", "generate_all", "generate_shot"]


class Refused(BaseModel):
    """A shot the API refused on moderation grounds."""

    shot_id: str
    reason: str
    generation_id: str | None = None


@dataclass
class Failed:
    """A shot that has no clip: its generation failed, or it builds on one that did."""

    shot_id: str
    error: BaseException

    @property
    def reason(self) -> str:
        return getattr(self.error, "failure_reason", None) or str(self.error)

    @property
    def refused(self) -> bool:
        """Refused on moderation (under the ``fail`` policy, which stops the render)."""
        return isinstance(self.error, ModerationRefused)


@task(cache_policy=NO_CACHE, retries=0)
def generate_shot(request, *, shot_id: str, on_moderation: str, **kwargs):
    """``generate_clip`` for one shot of a render; a refusal its policy handles is returned.

    Under ``skip`` or ``placeholder`` a moderation refusal is a warning and a task run in
    the "Refused" state carrying a ``Refused``; under ``fail`` it raises.
    """
    try:
        return generate_clip.fn(request, shot_id=shot_id, **kwargs)
    except ModerationRefused as refused:
        if on_moderation == "fail":
            raise
        then = "a placeholder slate takes its place" if on_moderation == "placeholder" else "skipped"
        get_run_logger().warning("Shot %s refused by moderation (generation %s: %s); policy %s: %s",
                                 shot_id, refused.generation_id, refused.failure_reason,
                                 on_moderation, then)
        return Completed(name="Refused", message=f"refused by moderation; {then}",
                         data=Refused(shot_id=shot_id, reason=refused.failure_reason or "",
                                      generation_id=refused.generation_id))


def generate_all(plan: RenderPlan, *, credentials: LumaCredentials, store, image_url, on_moderation: str,
                 sequence: str, on_done=None, remote=None) -> dict[str, Clip | Refused | Failed]:
    """Submit every generation (bounded by the flow's task runner); every shot's outcome.

    With ``remote`` (a ``flows.distribute.RemoteShots``) the shots go to Prefect task
    workers on any machine instead of this flow's threads.

    A progress artifact follows the shots as they finish, counting clips, refusals and
    failures apart; ``on_done(shot_id, outcome)`` is called as each shot finishes.
    """
    shots = [s for s in plan.shots if s.kind == "generate"]
    shot_of_key = {s.request.cache_key(): s.id for s in shots}
    futures, outcomes = {}, {}
    ledger = Ledger.for_store(store) if remote is None else None

    def submit(shot, request):
        if ledger is not None and ledger.is_stored(request.final_key(), store, VIDEO.suffix):
            # Paid for and stored: read in the flow body, no task run (a rebuild's shots
            # cost no Prefect round trips). Anything to pay or wait for is a task run.
            outcomes[shot.id] = _reuse(request, shot.id, credentials=credentials, store=store,
                                       image_url=image_url)
            return
        if remote is not None:
            futures[shot.id] = remote.submit(shot.id, request)
            return
        task = generate_shot.with_options(task_run_name=step_name("generate", shot.id),
                                          tags=[f"model:{request.model}", f"sequence:{sequence}",
                                                f"profile:{plan.profile}"])
        futures[shot.id] = task.submit(request, shot_id=shot.id, on_moderation=on_moderation,
                                       credentials=credentials, store=store, image_url=image_url)

    needs = {s.id: [shot_of_key[k] for k in s.request.upstream_keys()] for s in shots}
    try:
        order = dependency_order(needs)
    except ValueError as exc:  # validation rejects cycles; this guards all the same
        raise GenerationFailed(f"shot references form a cycle ({exc})") from None
    by_id = {s.id: s for s in shots}
    progress = Progress(sequence, len(shots))
    independent = [shot for shot in shots if not needs[shot.id]]
    if remote is not None:  # independent shots first, all at once (delayed side by side)
        futures.update(remote.submit_all([(shot.id, shot.request) for shot in independent]))
    for shot in independent if remote is None else ():
        submit(shot, shot.request)
    for shot in (by_id[sid] for sid in order if needs[sid]):  # then each after its sources
        ids = {}
        for key in shot.request.upstream_keys():
            upstream_id = shot_of_key[key]
            upstream = outcomes.get(upstream_id) or (
                _outcome(futures[upstream_id], upstream_id) if upstream_id in futures else None)
            if not isinstance(upstream, Clip):
                break
            ids[key] = upstream.generation_id
        else:
            submit(shot, shot.request.with_generation_ids(ids))
            continue
        outcomes[shot.id] = Failed(shot.id, GenerationFailed(
            f"shot {shot.id} builds on shot {upstream_id}, which has no clip", shot_id=shot.id))
    shot_of_future = {future.task_run_id: shot_id for shot_id, future in futures.items()}

    def finished(shot_id, outcome):
        if not isinstance(outcome, Clip):  # the terminal's live view (reelflow/_progress.py)
            _progress.shot_state(shot_id, "failed", detail=outcome.reason)
        progress.done(outcome)
        if on_done:
            on_done(shot_id, outcome)

    for shot_id, outcome in outcomes.items():
        finished(shot_id, outcome)
    for future in (remote.as_completed if remote else as_completed)(list(futures.values())):
        shot_id = shot_of_future[future.task_run_id]
        outcomes[shot_id] = _outcome(future, shot_id)
        finished(shot_id, outcomes[shot_id])
    return {s.id: outcomes[s.id] for s in shots}


def first_failure(outcomes: dict) -> BaseException | None:
    """The error the render stops on, in shot order (a refusal under ``fail`` is a failure)."""
    for outcome in outcomes.values():
        if isinstance(outcome, Failed):
            return outcome.error
    return None


def _reuse(request, shot_id: str, **kwargs) -> Clip | Failed:
    """A stored shot's clip through the same seam (checked; a damaged copy is fetched again
    from its generation, never paid), without a task run."""
    try:
        return generate_clip.fn(request, shot_id=shot_id, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the shot's outcome; the render raises it later
        return Failed(shot_id, exc)


def _outcome(future, shot_id: str) -> Clip | Refused | Failed:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - the shot's outcome; the render raises it later
        return Failed(shot_id, exc)


class Progress:
    """The progress artifact: the share of shots with a clip, refusals and failures named."""

    #: Seconds between updates while shots finish (each is a round trip to the API);
    #: the last shot always updates.
    EVERY_S = 2.0

    def __init__(self, sequence: str, total: int):
        self.sequence, self.total, self.finished = sequence, max(total, 1), 0
        self.counts = {"paid": 0, "cached": 0, "refused": 0, "failed": 0}
        self.id = create_progress_artifact(0.0, description=self._description())
        self.sent = time.monotonic()

    def done(self, outcome) -> None:
        if isinstance(outcome, Clip):
            self.counts["paid" if outcome.paid else "cached"] += 1
        else:
            refused = isinstance(outcome, Refused) or outcome.refused
            self.counts["refused" if refused else "failed"] += 1
        self.finished += 1
        if self.finished < self.total and time.monotonic() - self.sent < self.EVERY_S:
            return
        self.sent = time.monotonic()
        clips = self.counts["paid"] + self.counts["cached"]
        update_progress_artifact(self.id, 100.0 * clips / self.total,
                                 description=self._description())

    def _description(self) -> str:
        c = self.counts
        text = (f"{self.sequence}: {c['paid'] + c['cached']} of {self.total} clips "
                f"({c['paid']} paid, {c['cached']} cached)")
        return text + "".join(f", {c[k]} {k}" for k in ("refused", "failed") if c[k])

