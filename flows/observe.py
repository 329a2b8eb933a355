"""What a user watching Prefect sees: limits, events and the progress of a render.

* Global concurrency and rate limits for Luma calls are created when missing (a missing
  limit silently limits nothing), so every flow run on every worker shares the
  account's budget: LUMA_CONCURRENCY_LIMIT generations in progress, LUMA_RATE_LIMIT
  creates a minute, and the same pair (AGENTS_*) for the Agents API's account.
* Events, each with the shot's (or sequence's) name as its resource name and cost and
  paid status in the payload, for automations and the run's event feed:
  ``reelflow.shot.generated`` (paid), ``reelflow.shot.cached`` (reused, nothing paid),
  ``reelflow.shot.attempt-failed`` (one paid call that failed and was refunded:
  resubmitted or given up), ``reelflow.shot.refused`` (moderation), ``reelflow.shot.failed`` (no clip),
  ``reelflow.sequence.rendered`` and ``reelflow.sequence.failed``.
* One naming scheme for runs: ``step_name`` for task runs (``generate-opening``) and
  ``run_name`` for flow runs (``render-teaser-1128-083912``: two runs of one list
  differ). No square brackets: ``prefect flow-run ls`` reads them as markup.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.events import emit_event

from reelflow.config import DEFAULT_CONCURRENCY
from reelflow.tasks.luma import (AGENTS_CONCURRENCY_LIMIT, AGENTS_RATE_LIMIT, LUMA_CONCURRENCY_LIMIT,
                                 LUMA_RATE_LIMIT)

__all__ = ["LUMA_CONCURRENCY_LIMIT", "LUMA_RATE_LIMIT", "emit", "emit_shot", "ensure_limits",
           "run_name", "step_name", "tag_run"]

#: Creates a minute the account allows (the rate limit's slots decay continuously).
CREATES_PER_MINUTE = 20

_log = logging.getLogger("reelflow.flows.observe")
#: Characters kept in a run name; anything else (brackets, spaces, slashes) becomes ``-``.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(subject: str) -> str:
    return _UNSAFE.sub("-", subject).strip("-") or "unnamed"


def step_name(step: str, subject: str) -> str:
    """A task run's name: the step, then the shot or sequence it works on (``conform-opening``)."""
    return f"{step}-{_safe(subject)}"


def run_name(kind: str, subject: str, when: datetime | None = None) -> str:
    """A flow run's name: kind, subject and local start time (``render-teaser-1128-083912``)."""
    return f"{kind}-{_safe(subject)}-{(when or datetime.now()):%m%d-%H%M%S}"


def ensure_limits() -> None:
    """Create reelflow's global limits where they do not exist yet (never changes existing ones)."""
    wanted = {}
    for slots, creates in ((LUMA_CONCURRENCY_LIMIT, LUMA_RATE_LIMIT),
                           (AGENTS_CONCURRENCY_LIMIT, AGENTS_RATE_LIMIT)):  # one pair per API
        wanted[slots] = GlobalConcurrencyLimitCreate(name=slots, limit=DEFAULT_CONCURRENCY)
        wanted[creates] = GlobalConcurrencyLimitCreate(
            name=creates, limit=CREATES_PER_MINUTE, slot_decay_per_second=CREATES_PER_MINUTE / 60)
    with get_client(sync_client=True) as client:
        existing = {limit.name for limit in client.read_global_concurrency_limits(limit=200)}
        for name, create in wanted.items():
            if name not in existing:
                try:
                    client.create_global_concurrency_limit(create)
                except Exception as exc:  # another run created it first
                    _log.debug("limit %s: %s", name, exc)


def emit(event: str, sequence: str, shot_id: str | None = None, **payload) -> None:
    """Emit a reelflow event about a sequence (and a shot) with a JSON-able payload."""
    resource_id = f"reelflow.sequence.{sequence}" + (f".shot.{shot_id}" if shot_id else "")
    resource = {"prefect.resource.id": resource_id, "prefect.resource.name": shot_id or sequence}
    emit_event(event=event, resource=resource, payload=payload)


#: The event for each shot status.
SHOT_EVENTS = {"paid": "reelflow.shot.generated", "cached": "reelflow.shot.cached",
               "refused": "reelflow.shot.refused", "failed": "reelflow.shot.failed"}


def emit_shot(sequence: str, shot, policy: str | None) -> None:
    """The events of one finished shot (a ShotResult): each failed attempt, then its outcome."""
    for attempt in shot.attempts:
        if attempt.outcome in ("failed", "refused"):
            emit("reelflow.shot.attempt-failed", sequence, shot.id, generation_id=attempt.generation_id,
                 step=attempt.step, reason=attempt.reason, paid=attempt.billed,
                 cost_usd=attempt.cost_usd if attempt.billed else 0.0, price_usd=attempt.cost_usd)
    event = SHOT_EVENTS.get(shot.status)
    if event:
        emit(event, sequence, shot.id, generation_id=shot.generation_id, sha256=shot.sha256,
             model=shot.model, paid=any(a.billed for a in shot.attempts), cost_usd=shot.cost_usd,
             attempts=[a.generation_id for a in shot.attempts], reason=shot.failure_reason,
             policy=policy)


def tag_run(tags: list[str]) -> None:
    """Add ``tags`` to the current flow run's tags (its outcome, profile and policy)."""
    from prefect.runtime import flow_run

    if not flow_run.id:
        return
    merged = sorted({*(flow_run.tags or ()), *tags})
    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, tags=merged)
