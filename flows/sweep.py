"""Lost render runs: a flow run left "Running" by a dead machine, found and run again.

A distributed render (``render_sequence(..., distribute=True)``) rewrites a heartbeat in
the shared store while it runs (``<prefix>/heartbeats/flow-<flow run id>``, every 5 s).
``sweep`` lists the server's Running flow runs and, for each that has such a heartbeat
older than ``older_than_s`` (judged on the S3 server's own clock: its Date header
against the object's Last-Modified, so machines' clocks do not matter), marks the run
Crashed and, when it came from a deployment, starts a new run of that deployment with
the same parameters. The new run pays nothing again: every shot's generation is in the
shared ledger. Runs without a heartbeat (not distributed, or from before this) are left
alone. ``reelflow sweep`` runs it once; ``--every S`` keeps sweeping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.states import Crashed

from reelflow.flows.distribute import heartbeat_key
from reelflow.tasks import _s3
from reelflow.tasks.store import ClipStore

__all__ = ["Swept", "flow_heartbeat_name", "heartbeat_age_s", "sweep"]

_log = logging.getLogger("reelflow.flows.sweep")


@dataclass
class Swept:
    """One lost run: its id and name, how stale, and the run started in its place (if any)."""

    flow_run_id: str
    name: str
    age_s: float
    rerun_id: str | None


def flow_heartbeat_name(flow_run_id) -> str:
    return f"flow-{flow_run_id}"


def heartbeat_age_s(store: ClipStore, name: str) -> float | None:
    """Seconds since the heartbeat ``name`` was written, on the S3 server's clock; None: none."""
    try:
        head = store._client().head_object(Bucket=store.bucket_name, Key=heartbeat_key(store, name))
    except Exception as exc:  # noqa: BLE001 - absent (404) or unreadable: not judged
        if _s3.status_of(exc) not in (404, 0):
            _log.warning("heartbeat %s: %s", name, _s3.describe(exc))
        return None
    now = parsedate_to_datetime(head["ResponseMetadata"]["HTTPHeaders"]["date"])
    return (now - head["LastModified"]).total_seconds()


def sweep(store: ClipStore, older_than_s: float = 60.0) -> list[Swept]:
    """Mark lost distributed runs Crashed and start their deployments again."""
    swept = []
    with get_client(sync_client=True) as client:
        running = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType.RUNNING]))), limit=200)
        for run in running:
            age = heartbeat_age_s(store, flow_heartbeat_name(run.id))
            if age is None or age <= older_than_s:
                continue
            client.set_flow_run_state(run.id, Crashed(
                message=f"machine lost: no heartbeat for {age:.0f}s (reelflow sweep)"), force=True)
            rerun = None
            if run.deployment_id is not None:
                rerun = client.create_flow_run_from_deployment(
                    run.deployment_id, parameters=run.parameters, tags=list(run.tags or ()))
            swept.append(Swept(str(run.id), run.name, age, str(rerun.id) if rerun else None))
    return swept
