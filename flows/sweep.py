"""Lost render runs: a flow run whose machine died, found and run again, automatically.

A distributed render (``render_sequence(..., distribute=True)``) rewrites a heartbeat in
the shared store while it runs (``<prefix>/heartbeats/flow-<flow run id>``, every 5 s)
and deletes it when it ends, however it ends. So a heartbeat that stays behind names a
render whose process died. ``sweep`` lists those heartbeats and, for each:

- the run is **Running** and the heartbeat is older than ``older_than_s`` (judged on the
  S3 server's own clock: its Date header against the object's Last-Modified, so the
  machines' clocks do not matter): the machine was lost; the run is marked Crashed;
- the run is **Crashed** (Prefect's process worker saw its process die) and the heartbeat
  is older than ``CRASHED_QUIET_S`` (its process really stopped beating);
- the run finished some other way (or no longer exists): the heartbeat is removed.

A lost or crashed run that came from a deployment is started again with the same
parameters (at most ``MAX_RESUMES`` times, counted in a ``reelflow-resume:N`` tag), and
its heartbeat is removed so it is resumed once. The new run pays nothing again: every
shot's generation is in the shared ledger.

Who sweeps: every ``reelflow worker`` runs ``AutoSweep`` (every REELFLOW_SWEEP_S, default
15 s), and a lease in the store (``<prefix>/sweep/lease.json``, compare-and-swap) lets
one of them sweep at a time; the lease outlives its holder by LEASE_S at most, so a
lost sweeper is replaced. ``reelflow sweep`` runs it by hand.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed

from reelflow.config import settings
from reelflow.errors import WriteConflict
from reelflow.flows.distribute import HEARTBEAT_S
from reelflow.tasks import _s3
from reelflow.tasks.store import ClipStore

__all__ = ["AutoSweep", "SweepLease", "Swept", "flow_heartbeat_name", "heartbeat_age_s",
           "sweep", "sweep_every_s", "flow_stale_s"]

_log = logging.getLogger("reelflow.flows.sweep")

#: A Crashed run's heartbeat must be this old before it is resumed (its process stopped).
CRASHED_QUIET_S = 3 * HEARTBEAT_S
#: A render resumed this many times is left Crashed (something kills it every time).
MAX_RESUMES = 3
_RESUME_TAG = "reelflow-resume:"


def sweep_every_s() -> float:
    """Seconds between a worker's sweeps (REELFLOW_SWEEP_S, default 15; 0: no sweeping)."""
    return settings().seconds("sweep_every", 15)


def flow_stale_s() -> float:
    """A Running render whose heartbeat is older than this is lost (default 45 s)."""
    return settings().seconds("flow_stale", 45)


@dataclass
class Swept:
    """One lost run: its id and name, how stale, and the run started in its place (if any)."""

    flow_run_id: str
    name: str
    age_s: float
    rerun_id: str | None
    state: str = "RUNNING"


def flow_heartbeat_name(flow_run_id) -> str:
    return f"flow-{flow_run_id}"


def heartbeat_age_s(store: ClipStore, name: str) -> float | None:
    """Seconds since the heartbeat ``name`` was written, on the S3 server's clock; None: none."""
    try:
        return store.object_age_s(f"heartbeats/{name}")
    except Exception as exc:  # noqa: BLE001 - unreadable: not judged
        if _s3.status_of(exc) != 0:
            _log.warning("heartbeat %s: %s", name, _s3.describe(exc))
        return None


def _flow_heartbeats(store: ClipStore) -> dict[str, tuple[str, float]]:
    """Flow run id -> (heartbeat object name, age in seconds on the S3 server's clock)."""
    prefix = f"heartbeats/{flow_heartbeat_name('')}"
    return {name[len(prefix):]: (name, age) for name, age in store.object_ages(prefix).items()}


def _resumes(tags) -> int:
    return max([int(t[len(_RESUME_TAG):]) for t in tags or () if t.startswith(_RESUME_TAG)
                and t[len(_RESUME_TAG):].isdigit()] or [0])


def sweep(store: ClipStore, older_than_s: float | None = None,
          crashed_quiet_s: float = CRASHED_QUIET_S) -> list[Swept]:
    """Mark lost distributed runs Crashed and start their deployments again (once each)."""
    older_than_s = flow_stale_s() if older_than_s is None else older_than_s
    swept = []
    with get_client(sync_client=True) as client:
        for run_id, (key, age) in _flow_heartbeats(store).items():
            try:
                run = client.read_flow_run(UUID(run_id))
            except (ObjectNotFound, ValueError):  # gone, or not a run id: clear the beat
                run = None
            kind = run.state.type.value if run is not None and run.state else None
            if kind in ("RUNNING", "PENDING", "SCHEDULED") and age <= older_than_s:
                continue  # alive (or not started)
            if kind == "CRASHED" and age <= crashed_quiet_s:
                continue
            store.delete_object(key)
            if kind not in ("RUNNING", "PENDING", "CRASHED"):
                continue  # it ended (or is gone): only the heartbeat was left to clear
            if kind != "CRASHED":
                client.set_flow_run_state(run.id, Crashed(
                    message=f"machine lost: no heartbeat for {age:.0f}s (reelflow sweep)"), force=True)
            swept.append(Swept(str(run.id), run.name, age, _rerun(client, run), kind))
    return swept


def _rerun(client, run) -> str | None:
    """A new run of ``run``'s deployment with its parameters; None: no deployment, or resumed
    MAX_RESUMES times already."""
    count = _resumes(run.tags)
    if run.deployment_id is None or count >= MAX_RESUMES:
        return None
    tags = [t for t in run.tags or () if not t.startswith(_RESUME_TAG)] + [f"{_RESUME_TAG}{count + 1}"]
    rerun = client.create_flow_run_from_deployment(run.deployment_id, parameters=run.parameters,
                                                   tags=tags)
    return str(rerun.id)


@dataclass
class SweepLease:
    """Who sweeps now: a record in the store, taken and renewed by compare-and-swap."""

    store: ClipStore
    lease_s: float
    holder: str = ""

    def __post_init__(self):
        self.holder = self.holder or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.name = "sweep/lease.json"  # an object name under the store's folder

    def take(self) -> bool:
        """True when this holder has the lease (taken, renewed, or the last holder's expired)."""
        found = self.store.read_object(self.name)
        record, etag = {}, None
        if found is not None:
            etag = found.etag
            try:
                record = json.loads(found.body)
            except ValueError:
                record = {}
        if (record.get("holder") not in (None, self.holder)
                and float(record.get("until") or 0) > time.time()):
            return False
        body = json.dumps({"holder": self.holder, "until": time.time() + self.lease_s}).encode()
        try:
            self.store.write_object(self.name, body, etag)
        except WriteConflict:
            return False
        return True


class AutoSweep:
    """A daemon thread sweeping every ``every_s`` while this process holds the sweep lease."""

    def __init__(self, store: ClipStore, every_s: float | None = None,
                 older_than_s: float | None = None, report=print):
        self.store, self.every_s = store, sweep_every_s() if every_s is None else every_s
        self.older_than_s, self.report = older_than_s, report
        self.lease = SweepLease(store, lease_s=3 * self.every_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="reelflow-sweep")

    def start(self) -> "AutoSweep":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def once(self) -> list[Swept]:
        """One sweep if the lease is this process's; [] otherwise."""
        if not self.lease.take():
            return []
        found = sweep(self.store, self.older_than_s)
        for lost in found:
            self.report(describe(lost))
        return found

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.once()
            except Exception as exc:  # noqa: BLE001 - the server or store is away; next time
                self.report(f"reelflow sweep: skipped ({type(exc).__name__}: {exc})")


def describe(lost: Swept) -> str:
    how = "crashed" if lost.state == "CRASHED" else f"lost, no heartbeat for {lost.age_s:.0f}s"
    again = f"run again as {lost.rerun_id}" if lost.rerun_id else "not run again (no deployment, " \
        f"or resumed {MAX_RESUMES} times)"
    return f"reelflow sweep: {lost.name} ({lost.flow_run_id}) {how}: {again}"
