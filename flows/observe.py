"""What a user watching Prefect sees: limits, events and the progress of a render.

* Global concurrency and rate limits for Luma calls are created when missing (a missing
  limit silently limits nothing), so every flow run on every worker shares the
  account's budget: LUMA_CONCURRENCY_LIMIT generations in progress, LUMA_RATE_LIMIT
  creates a minute, and the same pair (AGENTS_*) for the Agents API's account.
* Events ``reelflow.shot.generated``, ``reelflow.shot.failed`` and
  ``reelflow.sequence.rendered`` carry cost and output, for automations.
"""

from __future__ import annotations

import logging

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.events import emit_event

from reelflow.config import DEFAULT_CONCURRENCY
from reelflow.tasks.luma import (AGENTS_CONCURRENCY_LIMIT, AGENTS_RATE_LIMIT, LUMA_CONCURRENCY_LIMIT,
                                 LUMA_RATE_LIMIT)

__all__ = ["LUMA_CONCURRENCY_LIMIT", "LUMA_RATE_LIMIT", "emit", "ensure_limits"]

#: Creates a minute the account allows (the rate limit's slots decay continuously).
CREATES_PER_MINUTE = 20

_log = logging.getLogger("reelflow.flows.observe")


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
