"""One sequence's shots spread over machines: Prefect task workers, a heartbeat, a sweep.

``render_sequence(..., distribute=True)`` (or REELFLOW_DISTRIBUTE=1) sends each shot's
generation to Prefect's task workers (``generate_remote.delay``) instead of running it in
the flow's own thread pool. ``reelflow worker`` serves that task on any machine: a worker
builds its Luma credentials and S3 clip store from its own environment (no secret is
ever a task parameter), takes a slot of the global ``reelflow-luma-generations`` limit
like any local render, and pays through the shared S3 ledger (compare-and-swap), so any
worker may generate any shot and a paid call still happens once.

A worker that dies (kill -9, a lost machine) leaves its task runs "Running" (or
"Pending": taken from the queue, not started) for good. While a remote shot runs, its
worker rewrites a heartbeat object in the store (``<prefix>/heartbeats/<task run id>``,
every HEARTBEAT_S); the flow polls the shots' task runs in one API call and, when a
Running or Pending shot's heartbeat has not changed for
REELFLOW_STALE_S seconds (default 30) by the flow's own clock, marks that task run
Crashed and delays the shot again. The next worker finds the generation id in the ledger
and waits on it: nothing is paid again.

Local inputs (keyframe images, uni-1 stills the flow made, an edit's source clip) travel
through the store: the flow puts each under its SHA-256 before delaying the shot
(``ship_inputs``), the worker fetches them by hash into its own cache (``land_inputs``)
and turns images into presigned URLs for the Dream Machine API; the cache key names
inputs by hash, so it is the same on every machine.
"""

from __future__ import annotations

import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from uuid import UUID

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterId
from prefect.runtime import task_run as current_task_run
from prefect.states import Cancelled, Crashed

from reelflow.config import settings
from reelflow.tasks.luma import LumaCredentials
from reelflow.tasks.models import Clip, GenerationRequest, Keyframe
from reelflow.tasks.store import ClipStore

__all__ = ["Heartbeat", "RemoteShots", "distribute_default", "generate_remote",
           "land_inputs", "shared_store_url", "ship_inputs"]

#: Seconds between a remote shot's heartbeats.
HEARTBEAT_S = 5.0
#: Seconds between the flow's polls of its remote shots.
POLL_S = 1.0
#: Shots a render delays side by side.
SUBMITTERS = 8


def distribute_default() -> bool:
    """REELFLOW_DISTRIBUTE=1 makes distribution the default for renders."""
    return settings().distribute_default()


def stale_after_s() -> float:
    return settings().seconds("stale", 30)


def shared_store_url(store: ClipStore) -> str:
    """``s3://bucket/prefix`` of a shared store; a local store cannot be shared."""
    if not store.is_s3:
        raise ValueError("distributed rendering needs a shared S3 clip store: "
                         "set REELFLOW_STORE=s3://bucket/prefix on the flow and every worker")
    return f"s3://{store.bucket_name}/{store.bucket_folder}".rstrip("/")


class Heartbeat:
    """A background thread rewriting ``<prefix>/heartbeats/<name>`` in the store while held."""

    def __init__(self, store: ClipStore, name: str, every_s: float = HEARTBEAT_S):
        self.store, self.name, self.every_s = store, f"heartbeats/{name}", every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{name}")

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        """Stop beating and remove the heartbeat: one left behind means its process died."""
        self._stop.set()
        self._thread.join(timeout=self.every_s + 5)
        try:
            self.store.delete_object(self.name)
        except Exception:  # noqa: BLE001 - left behind: a sweep clears it (the run ended)
            pass

    def _beat(self) -> None:
        count = 0
        while True:
            count += 1
            try:
                self.store.replace_object(self.name, f"{count} {time.time():.3f}".encode())
            except Exception:  # noqa: BLE001 - a missed beat; the next one may land
                pass
            if self._stop.wait(self.every_s):
                return


def heartbeat_key(store: ClipStore, name: str) -> str:
    """The bucket key of heartbeat ``name`` (``Heartbeat`` writes it)."""
    return store.s3_key(f"heartbeats/{name}")


@task(cache_policy=NO_CACHE, retries=0, persist_result=True)
def generate_remote(request: GenerationRequest, *, shot_id: str, on_moderation: str,
                    store_url: str):
    """One shot's generation on a task worker: this machine's credentials and S3 store.

    Returns what ``generate_shot`` returns (a Clip whose path is this worker's copy, or
    a Refused state under skip/placeholder); the flow fetches the clip from the store.
    """
    from reelflow.flows.generation import generate_shot

    from reelflow.flows.endpoint import ImageUrls

    store = ClipStore.from_url(store_url)  # the render's store (this machine's S3 keys)
    with Heartbeat(store, str(current_task_run.id)):
        request = land_inputs(request, store)
        return generate_shot.fn(request, shot_id=shot_id, on_moderation=on_moderation,
                                credentials=LumaCredentials.from_env(), store=store,
                                image_url=ImageUrls(store, loopback_ok=False))


def _suffix(frame: Keyframe) -> str:
    return frame.path.suffix.lower() or (".mp4" if frame.kind == "video" else ".png")


def ship_inputs(request: GenerationRequest, store: ClipStore) -> GenerationRequest:
    """Put every local input of ``request`` (images, stills made by the flow, an edit's
    source clip) into the shared store under its content hash, so any worker can land it.

    Idempotent: a file already in the store is not uploaded again.
    """
    def ship(frame: Keyframe) -> Keyframe:
        if frame.path is None:
            return frame
        sha = store.put_file(frame.path, suffix=_suffix(frame), keep_source=True)
        if frame.sha256 and sha != frame.sha256:
            raise ValueError(f"{frame.path} changed since it was planned (its SHA-256 differs)")
        return frame.model_copy(update={"sha256": sha})

    return request.map_inputs(ship)


def land_inputs(request: GenerationRequest, store: ClipStore) -> GenerationRequest:
    """The worker's side of ``ship_inputs``: every local input fetched from the store by its
    hash into this machine's cache; the request's paths are this machine's copies (the
    cache key, which names inputs by hash, is unchanged)."""
    def land(frame: Keyframe) -> Keyframe:
        if frame.path is None or not frame.sha256:
            return frame
        return frame.model_copy(update={"path": store.fetch(frame.sha256, _suffix(frame))})

    return request.map_inputs(land)


@dataclass
class _Pending:
    shot_id: str
    request: GenerationRequest
    task_run_id: UUID
    seen_beat: str | None = None
    beat_changed_at: float = field(default_factory=time.monotonic)
    resumed: int = 0
    phase: str = "SCHEDULED"


@dataclass
class RemoteShot:
    """A future-like handle for generate_all: ``task_run_id`` and a blocking ``result()``."""

    shots: "RemoteShots"
    shot_id: str

    @property
    def task_run_id(self) -> UUID:
        return self.shots.first_id[self.shot_id]

    def result(self):
        return self.shots.wait_for(self.shot_id)


class RemoteShots:
    """The flow's side: delay shots, poll their task runs, resume lost ones, collect outcomes."""

    def __init__(self, store: ClipStore, *, sequence: str, profile: str, on_moderation: str):
        self.store, self.url = store, shared_store_url(store)
        self.sequence, self.profile, self.on_moderation = sequence, profile, on_moderation
        self.pending: dict[str, _Pending] = {}
        self.done: dict[str, object] = {}
        self.first_id: dict[str, UUID] = {}
        self._log = get_run_logger()

    def submit(self, shot_id: str, request: GenerationRequest) -> RemoteShot:
        from reelflow.flows.observe import step_name

        task_ = generate_remote.with_options(
            task_run_name=step_name("generate", shot_id),
            tags=[f"model:{request.model}", f"sequence:{self.sequence}", f"profile:{self.profile}",
                  "distributed"])
        future = task_.delay(ship_inputs(request, self.store), shot_id=shot_id,
                             on_moderation=self.on_moderation, store_url=self.url)
        previous = self.pending.get(shot_id)
        self.pending[shot_id] = _Pending(shot_id, request, future.task_run_id,
                                         resumed=previous.resumed + 1 if previous else 0)
        self.first_id.setdefault(shot_id, future.task_run_id)
        return RemoteShot(self, shot_id)

    def submit_all(self, shots: list[tuple[str, GenerationRequest]]) -> dict[str, RemoteShot]:
        """``submit`` each (shot id, request), SUBMITTERS at a time: one ``delay()`` is a task
        run created on the server and its parameters written to the result storage (S3),
        seconds on a loaded machine, so one after another they would hold the slots idle."""
        if not shots:
            return {}
        with ThreadPoolExecutor(min(SUBMITTERS, len(shots))) as pool:
            handles = [pool.submit(contextvars.copy_context().run, self.submit, shot_id, request)
                       for shot_id, request in shots]  # each in the flow run's context
            return {shot_id: handle.result() for (shot_id, _), handle in zip(shots, handles)}

    def wait_for(self, shot_id: str):
        while shot_id not in self.done:
            self.poll()
        return self._outcome(shot_id)

    def as_completed(self, handles: list[RemoteShot]):
        left = [h.shot_id for h in handles]
        while left:
            finished = [s for s in left if s in self.done]
            for shot_id in finished:
                left.remove(shot_id)
                yield RemoteShot(self, shot_id)
            if left:
                self.poll()

    # -- polling --------------------------------------------------------------------------------

    def poll(self) -> None:
        """One look at every pending shot: record finished ones, resume lost ones."""
        time.sleep(POLL_S)
        if not self.pending:
            return
        by_id = {p.task_run_id: p for p in self.pending.values()}
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(task_run_filter=TaskRunFilter(
                id=TaskRunFilterId(any_=list(by_id))), limit=len(by_id) + 1)
            active = any(r.state and (r.state.is_running() or r.state.is_pending()) for r in runs)
            for run in runs:
                pending, state = by_id[run.id], run.state
                if state is None:
                    continue
                if state.type.value != pending.phase:  # the stale clocks start at each change
                    pending.phase, pending.beat_changed_at = state.type.value, time.monotonic()
                if state.is_final() and not state.is_crashed():
                    self.done[pending.shot_id] = state
                    del self.pending[pending.shot_id]
                elif state.is_crashed():
                    self._resume(client, pending, state, mark=None)
                elif (state.is_running() or state.is_pending()) and self._lost(pending):
                    self._resume(client, pending, state, mark=Crashed(
                        message=f"worker lost: no heartbeat for {stale_after_s():.0f}s"))
                elif state.is_scheduled() and self.done and not active and self._swallowed(pending):
                    self._resume(client, pending, state, mark=Cancelled(
                        message=f"taken by no worker for {stale_after_s():.0f}s while none ran"))

    def _swallowed(self, pending: _Pending) -> bool:
        """Scheduled while no shot of this render runs: a dead worker took it off the queue
        (a task worker receives one run ahead of its limit), or no worker is up at all."""
        return time.monotonic() - pending.beat_changed_at > stale_after_s()

    def _lost(self, pending: _Pending) -> bool:
        found = self.store.read_object(f"heartbeats/{pending.task_run_id}")
        beat = found.etag if found else None
        now = time.monotonic()
        if beat != pending.seen_beat:
            pending.seen_beat, pending.beat_changed_at = beat, now
            return False
        return now - pending.beat_changed_at > stale_after_s()

    def _resume(self, client, pending: _Pending, state, mark) -> None:
        if mark is not None:
            client.set_task_run_state(pending.task_run_id, mark, force=True)
        self._log.warning("Shot %s: task run %s %s (%s); delaying it again", pending.shot_id,
                          pending.task_run_id, mark.message if mark else "crashed", state.name)
        self.submit(pending.shot_id, pending.request)

    def _outcome(self, shot_id: str):
        state = self.done[shot_id]
        value = state.result()  # raises the shot's error, as a local future would
        if isinstance(value, Clip):  # the worker's path: this machine's copy from the store
            return value.model_copy(update={"path": self.store.fetch(value.sha256, value.path.suffix or ".mp4")})
        return value
