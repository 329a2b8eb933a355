"""The emulated Luma account on disk: generations, credits, counters and rendered assets.

Layout of the data directory::

    state.json              {"created", "upscaled", "audio_added", "credit_balance",
                             "recent_creates": [timestamps of the last minute's creates]}
    state.lock              flock'ed around every change to state.json or a record
    generations/<id>.json   one record per generation (private fields + the request)
    assets/<stem>.mp4|.jpg  rendered clips; stem = id, or id-r<N> after an upscale/audio
    inputs/<sha256>.<ext>   fetched keyframe images; <id>-r<N>-first|last.png clip frames
    locks/<stem>.lock       flock'ed while a clip renders (threads and processes)

A generation's state is never stored: it is derived from the persisted start time and
latency of its newest revision, so it keeps "dreaming" while no emulator runs, like a
real account. Every file is written to a temp file and os.replace'd into place.

A failure is stored as ``record["failure"] = {"reason", "when"}``: decided at create
(moderation: visible once dreaming; "Job failed": visible when due) or found while
preparing the render (a keyframe that cannot be read: visible at once, when "now").
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from reelflow.emulator import spec
from reelflow.emulator.faults import FailureDecision, Faults
from reelflow.emulator._util import NotFound, stem as _stem, write_json as _write_json
from reelflow.emulator.limits import WINDOW, InsufficientCredits, LimitExceeded, check_limits
from reelflow.emulator.lazy_clips import LazyClips

__all__ = ["Account", "InsufficientCredits", "LimitExceeded", "NotFound", "parse_asset_name"]

log = logging.getLogger("reelflow.emulator.account")

_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_ASSET_RE = re.compile(r"^(?P<id>[0-9a-f-]{36})(?:-r(?P<rev>[1-9][0-9]*))?\.(?P<ext>mp4|jpg)$")
#: Fraction of the latency a new generation spends "queued" before "dreaming".
QUEUED_FRACTION = 0.1
#: How long a GET waits for a due render before answering "dreaming" instead.
DEFAULT_RENDER_WAIT = 45.0


def parse_asset_name(name: str) -> tuple[str, int, str] | None:
    """Split ``<id>[-r<N>].<ext>`` into (id, revision, ext), or None if malformed."""
    m = _ASSET_RE.match(name)
    if not m or not _ID_RE.match(m["id"]):
        return None
    return m["id"], int(m["rev"] or 0), m["ext"]


def _iso(ts: float) -> str:
    """ISO-8601 UTC with a Z, as the API writes created_at."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Account(LazyClips):
    """One account in ``data_dir``; safe for many threads and several processes."""

    def __init__(self, data_dir: str | os.PathLike[str], *, latency: float = 0.0,
                 credits: float = spec.DEFAULT_CREDITS,
                 render_wait: float = DEFAULT_RENDER_WAIT):
        self.root = Path(data_dir).resolve()
        self.latency = float(latency)
        self.render_wait = render_wait
        for sub in ("generations", "assets", "locks", "inputs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._init_rendering()
        with self._locked():
            if not (self.root / "state.json").exists():
                _write_json(self.root / "state.json", {
                    "created": 0, "upscaled": 0, "audio_added": 0,
                    "credit_balance": float(credits)})

    # -- persistence -------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, name: str = "state.lock") -> Iterator[None]:
        """Hold an exclusive flock: excludes other threads (own fd each) and processes."""
        path = self.root / ("locks" if name != "state.lock" else "") / name
        with open(path, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _state(self) -> dict[str, Any]:
        return json.loads((self.root / "state.json").read_text(encoding="utf-8"))

    def _record_path(self, gen_id: str) -> Path:
        if not _ID_RE.match(gen_id):
            raise NotFound(gen_id)
        return self.root / "generations" / f"{gen_id}.json"

    def record(self, gen_id: str) -> dict[str, Any]:
        """Return the stored record of ``gen_id``; raise NotFound."""
        try:
            return json.loads(self._record_path(gen_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFound(gen_id) from None

    def asset_path(self, gen_id: str, rev: int, ext: str) -> Path:
        return self.root / "assets" / f"{_stem(gen_id, rev)}.{ext}"

    # -- account-level reads -----------------------------------------------------------

    def created_count(self) -> int:
        """How many create calls produced a generation, ever (persisted)."""
        return int(self._state()["created"])

    def credit_balance(self) -> float:
        return round(float(self._state()["credit_balance"]), 2)

    def stats(self) -> dict[str, Any]:
        """The persisted counters plus the number of generations on file."""
        state = self._state()
        state["generations"] = sum(1 for _ in (self.root / "generations").glob("*.json"))
        return state

    def records(self) -> list[dict[str, Any]]:
        """All records, newest first (by the creation sequence number)."""
        found = []
        for path in (self.root / "generations").glob("*.json"):
            try:
                found.append(json.loads(path.read_text(encoding="utf-8")))
            except FileNotFoundError:  # deleted while listing
                continue
        return sorted(found, key=lambda r: r["seq"], reverse=True)

    # -- changes -----------------------------------------------------------------------

    def create(self, body: dict[str, Any], *, latency: float | None = None,
               failure: Callable[[], FailureDecision | None] | None = None,
               limits: Faults | None = None, strict: bool = True) -> dict[str, Any]:
        """Validate and store a video generation; charge it; return the record.

        ``latency`` overrides the account's (jitter). ``limits`` (max_concurrent,
        creates_per_minute, enforce_credits) are checked under the account lock, so they
        hold across threads and processes; only then is ``failure()`` asked, and its
        decision is persisted with the generation. ``strict=False`` (conformance mode)
        validates the schema only and leaves bad references to fail the render.
        """
        spec.validate_video_request(body, strict=strict)
        request = dict(body)
        request.setdefault("generation_type", "video")
        res = request.get("resolution") or spec.DEFAULT_RESOLUTION
        cost = spec.generation_cost(request)
        with self._locked():
            if strict:
                self._check_references(body)
            now = time.time()
            state = self._state()
            recent = [t for t in state.get("recent_creates", []) if now - t < WINDOW]
            check_limits(limits, state["credit_balance"], recent, cost, now,
                         lambda: self._in_progress(now))
            decision = failure() if failure is not None else None
            record = {
                "id": str(uuid.uuid4()), "seq": state["created"] + 1, "created_ts": now,
                "created_at": _iso(now), "model": request["model"], "request": request,
                "cost": cost, "failure": decision.model_dump() if decision else None,
                "revisions": [{"kind": "video", "started_ts": now,
                               "latency": self.latency if latency is None else latency,
                               "resolution": res, "audio_prompt": None}],
            }
            _write_json(self._record_path(record["id"]), record)
            state["created"] = record["seq"]
            state["credit_balance"] = round(state["credit_balance"] - record["cost"], 2)
            state["recent_creates"] = recent + [now]
            _write_json(self.root / "state.json", state)
        log.info("created %s (%s %s)", record["id"], record["model"], res)
        return record

    def _in_progress(self, now: float) -> list[float]:
        """Seconds left for every generation that is queued or dreaming right now."""
        left = []
        for record in self.records():
            revision = record["revisions"][-1]
            phase = self._phase(revision, now)
            if phase != "done" and self._visible_failure(record, phase) is None:
                left.append(revision["started_ts"] + revision["latency"] - now)
        return left

    def _check_references(self, body: dict[str, Any]) -> None:
        """Keyframes that reference a generation must name a completed one in this account."""
        problems = []
        for name, frame in (body.get("keyframes") or {}).items():
            if isinstance(frame, dict) and frame.get("type") == "generation":
                try:
                    ref = self.record(frame["id"])
                except NotFound:
                    problems.append(f"keyframes.{name}.id: generation {frame['id']} not found")
                    continue
                phase = self._phase(ref["revisions"][-1], time.time())
                if phase != "done" or self._visible_failure(ref, phase) is not None:
                    problems.append(f"keyframes.{name}.id: generation {frame['id']} "
                                    "is not completed")
        if problems:
            raise spec.RequestInvalid(problems)

    def delete(self, gen_id: str) -> None:
        """Remove a generation and its assets; raise NotFound."""
        path = self._record_path(gen_id)
        with self._locked():
            try:
                path.unlink()
            except FileNotFoundError:
                raise NotFound(gen_id) from None
        for asset in (self.root / "assets").glob(f"{gen_id}*"):
            asset.unlink(missing_ok=True)

    def revise(self, gen_id: str, kind: str, body: Any, latency: float | None = None,
               limits: Faults | None = None) -> dict[str, Any]:
        """Upscale or add audio in place: a new revision that dreams again, same id.

        With ``limits.enforce_credits`` a revision that costs more than the balance is
        refused (InsufficientCredits, answered 402) and nothing changes.
        """
        with self._locked():
            record = self.record(gen_id)
            last = record["revisions"][-1]
            phase = self._phase(last, time.time())
            if phase != "done" or self._visible_failure(record, phase) is not None:
                raise spec.RequestInvalid([f"generation {gen_id} is not completed"])
            revision = dict(last, kind=kind, started_ts=time.time(),
                            latency=self.latency if latency is None else latency)
            if kind == "upscale_video":
                revision["resolution"] = spec.validate_upscale_request(body, last["resolution"])
                cost = spec.generation_cost(record["request"], revision["resolution"],
                                            spec.UPSCALE_PRICE_FACTOR)
            else:
                spec.validate_audio_request(body)
                revision["audio_prompt"] = body.get("prompt") or ""
                seconds = spec.frame_count(record["request"]) / spec.FPS
                cost = round(seconds * spec.AUDIO_USD_PER_SECOND * 100, 2)
            state = self._state()
            if limits is not None and limits.enforce_credits and state["credit_balance"] < cost:
                raise InsufficientCredits(
                    f"Insufficient credits: this {kind} costs {cost:.2f} credits, the "
                    f"balance is {state['credit_balance']:.2f}")
            state["upscaled" if kind == "upscale_video" else "audio_added"] += 1
            record["revisions"].append(revision)
            record["cost"] = round(record["cost"] + cost, 2)
            state["credit_balance"] = round(state["credit_balance"] - cost, 2)
            _write_json(self._record_path(gen_id), record)
            _write_json(self.root / "state.json", state)
        return record

    def _refund(self, record: dict[str, Any]) -> None:
        """Give a failed generation's charge back, once (Luma refunds failed jobs)."""
        if record.get("refunded"):
            return
        with self._locked():
            try:
                fresh = self.record(record["id"])
            except NotFound:
                return
            if fresh.get("refunded"):
                return
            fresh["refunded"] = record["refunded"] = True
            _write_json(self._record_path(record["id"]), fresh)
            state = self._state()
            state["credit_balance"] = round(state["credit_balance"] + fresh["cost"], 2)
            state["refunded"] = round(state.get("refunded", 0.0) + fresh["cost"], 2)
            _write_json(self.root / "state.json", state)

    # -- state and rendering -----------------------------------------------------------

    @staticmethod
    def _phase(revision: dict[str, Any], now: float) -> str:
        """queued / dreaming / done, from the revision's start time and latency only."""
        elapsed, latency = now - revision["started_ts"], revision["latency"]
        if elapsed >= latency:
            return "done"
        if revision["kind"] == "video" and elapsed < QUEUED_FRACTION * latency:
            return "queued"
        return "dreaming"

    @staticmethod
    def _visible_failure(record: dict[str, Any], phase: str) -> str | None:
        """The failure_reason a client sees now, given the phase of the first revision."""
        failure = record.get("failure")
        if failure is None or len(record["revisions"]) > 1 or phase == "queued":
            return None  # revisions exist only on completed generations
        if failure["when"] == "done" and phase != "done":
            return None
        return failure["reason"]

    def state_of(self, record: dict[str, Any], *, block: bool) -> tuple[str, int | None]:
        """Return (state, revision whose assets are ready or None).

        A due revision is "completed" only once its clip exists: ``block`` waits up to
        ``render_wait`` for the render, otherwise the render starts in the background and
        the answer is "dreaming". A dreaming revision pre-renders in the background. A
        render that finds its keyframes unreadable stores a failure: "failed" from then.
        """
        rev = len(record["revisions"]) - 1
        phase = self._phase(record["revisions"][rev], time.time())
        if phase == "queued":
            return "queued", None
        if self._visible_failure(record, phase) is not None:
            self._refund(record)
            return "failed", None
        if record.get("failure") is not None:  # decided at create: the job never renders
            return "dreaming", None
        wait = self.render_wait if block and phase == "done" else 0
        if self.ensure_rendered(record, rev, wait=wait) and phase == "done":
            return "completed", rev
        if self._failure_now(record):
            self._refund(record)
            return "failed", None
        return "dreaming", None

    def _failure_now(self, record: dict[str, Any]) -> bool:
        """Re-read the record: did a render just store a failure in it?"""
        try:
            fresh = self.record(record["id"])
        except NotFound:
            return False
        if fresh.get("failure") is not None:
            record["failure"] = fresh["failure"]
            return True
        return False

    def public(self, record: dict[str, Any], base_url: str, *, block: bool,
               fresh: bool = False) -> dict[str, Any]:
        """The Generation object the API returns, asset URLs under ``base_url``.

        ``fresh`` (a create's answer) reports "queued" without looking at the clock.
        """
        state, rev = ("queued", None) if fresh else self.state_of(record, block=block)
        assets: dict[str, str | None] = {"video": None, "image": None, "progress_video": None}
        if rev is not None:
            stem = _stem(record["id"], rev)
            assets["video"] = f"{base_url}/assets/{stem}.mp4"
            assets["image"] = f"{base_url}/assets/{stem}.jpg"
        failure = record.get("failure") if state == "failed" else None
        return {
            "id": record["id"], "generation_type": "video", "state": state,
            "failure_reason": failure["reason"] if failure else None,
            "created_at": record["created_at"], "model": record["model"], "assets": assets,
            "request": record["request"],
        }

    def asset_due(self, gen_id: str, rev: int) -> dict[str, Any]:
        """Return the record if revision ``rev`` of ``gen_id`` is due; raise NotFound."""
        record = self.record(gen_id)
        if rev >= len(record["revisions"]) or record.get("failure") is not None or \
                self._phase(record["revisions"][rev], time.time()) != "done":
            raise NotFound(gen_id)
        return record

