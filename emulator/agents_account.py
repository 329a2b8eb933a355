"""The emulated Agents API account on disk: generations, credits and rendered outputs.

Layout, under ``<data>/agents``::

    state.json               {"created", "spent", "refunded", "budget", "secret", "recent_creates"}
    generations/<id>.json    one record per generation (the normalized request, cost, failure)
    outputs/<id>-<n>.<ext>   rendered outputs (mp4, png, jpg)
    inputs/<sha256>.<ext>    ingested inputs (fetched URLs, decoded data, extracted frames)
    files/, blobs/           the Files API (files.py)

As on the Dream Machine side, a generation's state is derived from its persisted creation
time and latency (queued for the first 10 %, then processing, then completed once its
output is rendered), so it survives restarts and keeps running while no emulator does.
A failed generation is refunded the first time its failure becomes visible.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import av

from reelflow.emulator import agents_spec as aspec
from reelflow.emulator._util import NotFound, write_json
from reelflow.emulator.account import QUEUED_FRACTION, _iso
from reelflow.emulator.agents_files import Files
from reelflow.emulator.agents_inputs import InputProblem, Resolver
from reelflow.emulator.keyframes import fetch_tls
from reelflow.emulator.agents_clips import make_exr, make_image, make_video, output_size
from reelflow.emulator.clip_cache import memo
from reelflow.emulator.faults import Faults
from reelflow.emulator.limits import WINDOW, InsufficientCredits, check_limits

__all__ = ["AgentsAccount", "DEFAULT_IMAGE_LONG_SIDE"]

log = logging.getLogger("reelflow.emulator.agents")

DEFAULT_IMAGE_LONG_SIDE = 2048
_RENDER_SLOTS = threading.BoundedSemaphore(2)
#: failure_reason texts per failure_code (the service's words where known).
REASONS = {"content_moderated": "Prompt rejected by content moderation",
           "generation_failed": "Generation failed", "budget_exhausted": "Budget exhausted",
           "invalid_request": "Invalid request", "output_not_found": "Output not found",
           "rate_limited": "Rate limited upstream; retry later"}


class AgentsAccount(Files):
    """One Agents API account in ``<data>/agents``; safe for threads and processes."""

    def __init__(self, data_dir: str | Path, *, latency: float = 0.0,
                 budget: float = 10000.0, image_long_side: int = DEFAULT_IMAGE_LONG_SIDE,
                 trust_ca: str | Path | None = None):
        self.root = Path(data_dir).resolve() / "agents"
        self._verify = fetch_tls(trust_ca)
        self.latency = float(latency)
        self.image_long_side = int(image_long_side)
        for sub in ("generations", "outputs", "inputs", "files", "blobs", "locks"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        with self.locked():
            if not (self.root / "state.json").exists():
                write_json(self.root / "state.json", {
                    "created": 0, "files_created": 0, "spent": 0.0, "refunded": 0.0,
                    "budget": float(budget), "secret": secrets.token_hex(16)})
        self._threads: list[threading.Thread] = []

    # -- persistence -------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, name: str = "state.lock") -> Iterator[None]:
        """An exclusive flock (threads and processes) on ``locks/<name>``."""
        with open(self.root / "locks" / name, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def state(self) -> dict[str, Any]:
        return json.loads((self.root / "state.json").read_text(encoding="utf-8"))

    def _path(self, gen_id: str) -> Path:
        try:
            uuid.UUID(gen_id)
        except ValueError:
            raise NotFound(gen_id) from None
        return self.root / "generations" / f"{gen_id}.json"

    def record(self, gen_id: str) -> dict[str, Any]:
        try:
            return json.loads(self._path(gen_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFound(gen_id) from None

    def records(self) -> list[dict[str, Any]]:
        found = []
        for path in (self.root / "generations").glob("*.json"):
            with contextlib.suppress(FileNotFoundError):
                found.append(json.loads(path.read_text(encoding="utf-8")))
        return sorted(found, key=lambda r: r["seq"])

    def output_path(self, gen_id: str, index: int, ext: str) -> Path:
        return self.root / "outputs" / f"{gen_id}-{index}.{ext}"

    # -- create ------------------------------------------------------------------------

    def create(self, body: Any, *, latency: float | None = None, strict: bool = True,
               failure: Callable[[], tuple[str, str] | None] | None = None,
               limits: Faults | None = None) -> dict[str, Any]:
        """Validate, ingest inputs, check limits, record and charge one generation.

        Raises AgentsInvalid (422/400) and LimitExceeded (429). Inputs that cannot be used
        fail the generation (failure_code) instead; so does a spend beyond the budget
        (``budget_exhausted``, when ``limits.enforce_credits``).
        """
        request = aspec.validate(body, combinations=strict)
        inputs, problem, seconds, size = self._ingest(request, strict)
        cost = aspec.generation_cost(request, seconds)
        with self.locked():
            now = time.time()
            state = self.state()
            recent = [t for t in state.get("recent_creates", []) if now - t < WINDOW]
            decided = problem
            try:
                check_limits(limits, state["budget"] - state["spent"], recent, cost, now,
                             lambda: self._in_progress(now))
            except InsufficientCredits:
                decided = decided or ("budget_exhausted", "now")
            if decided is None and failure is not None:
                decided = failure()
            record = {
                "id": str(uuid.uuid4()), "seq": state["created"] + 1, "created_ts": now,
                "created_at": _iso(now), "model": request["model"], "type": request["type"],
                "request": request, "cost": cost, "latency": self.latency
                if latency is None else latency, "inputs": {k: str(v) for k, v in
                                                            inputs.items()},
                "size": list(size), "source_seconds": seconds, "refunded": False,
                "failure": None if decided is None else {
                    "code": decided[0], "when": decided[1],
                    "reason": REASONS.get(decided[0], decided[0].replace("_", " "))},
            }
            if decided is not None and decided[0] == "budget_exhausted":
                record["cost"] = 0.0  # refused before any work: never charged
            write_json(self._path(record["id"]), record)
            state["created"] = record["seq"]
            state["spent"] = round(state["spent"] + record["cost"], 2)
            state["recent_creates"] = recent + [now]
            write_json(self.root / "state.json", state)
        log.info("agents created %s (%s %s)", record["id"], record["model"], record["type"])
        if record["failure"] is None:
            self._prerender(record)
        return record

    def _ingest(self, request: dict[str, Any], strict: bool):
        """Local files for every ref, the source length, the output size; or a failure."""
        resolver = Resolver(self.root / "inputs", self._generation_output, self.file_blob,
                            self._verify)
        inputs: dict[str, Path] = {}
        for where, ref in aspec.refs_of(request):
            try:
                inputs[where] = resolver.resolve(where, ref)
            except InputProblem as err:
                if err.code is None and strict:
                    raise aspec.AgentsInvalid(400, [err.message]) from None
                return {}, (err.code or "invalid_request", "now"), None, (0, 0)
        seconds, source_size = None, None
        if request["type"] in ("video_edit", "video_reframe"):
            seconds, source_size = self._probe(inputs["source"])
            limit = aspec.MAX_SOURCE_SECONDS[request["type"]]
            if seconds is None:
                return {}, ("corrupt_input", "now"), None, (0, 0)
            if seconds > limit + 1e-6 and strict:
                raise aspec.AgentsInvalid(400, [f"source: {seconds:g} s is longer than "
                                                f"{limit:g} s"])
        if request["type"] == "image_edit" and inputs.get("source", Path()).suffix == ".mp4":
            raise aspec.AgentsInvalid(400, ["source: image_edit needs an image"])
        return inputs, None, seconds, output_size(request, source_size, self.image_long_side)

    @staticmethod
    def _probe(path: Path) -> tuple[float | None, tuple[int, int] | None]:
        """Duration (s) and size of a source video, or (None, None) if it is not one."""
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                frames = stream.frames or sum(1 for _ in container.demux(stream)
                                              if _.size)
                rate = float(stream.average_rate or 24)
                return round(frames / rate, 3), (stream.width, stream.height)
        except (av.error.FFmpegError, IndexError, OSError):
            return None, None

    def _generation_output(self, gen_id: str, where: str) -> Path:
        """The first output of a completed generation of this account (for a ref)."""
        try:
            record = self.record(gen_id)
        except NotFound:
            raise InputProblem(None, f"{where}.generation_id: generation {gen_id} "
                                     "not found") from None
        if self.state_of(record, block=True) != "completed":
            raise InputProblem(None, f"{where}.generation_id: generation {gen_id} "
                                     "is not completed")
        return self.output_path(gen_id, 0, self.outputs_of(record)[0][1])

    def _in_progress(self, now: float) -> list[float]:
        left = []
        for record in self.records():
            if record["failure"] is None and now - record["created_ts"] < record["latency"]:
                left.append(record["created_ts"] + record["latency"] - now)
        return left

    # -- state and outputs -------------------------------------------------------------

    @staticmethod
    def outputs_of(record: dict[str, Any]) -> list[tuple[str, str]]:
        """(type, ext) of each output: one video (and its EXR export, a ZIP of EXR
        frames, when ``exr_export``), one image, or two layers."""
        request = record["request"]
        if request["type"] in aspec.VIDEO_TYPES:
            exr = (request.get("video") or {}).get("exr_export")
            return [("video", "mp4")] + ([("exr", "zip")] if exr else [])
        ext = "jpg" if request.get("output_format") == "jpeg" else "png"
        return [("image", ext)] * (2 if request["type"] == "layering" else 1)

    def state_of(self, record: dict[str, Any], *, block: bool) -> str:
        """queued / processing / completed / failed, from the clock and the outputs."""
        elapsed = time.time() - record["created_ts"]
        latency = record["latency"]
        phase = "done" if elapsed >= latency else \
            "queued" if elapsed < QUEUED_FRACTION * latency else "processing"
        failure = record.get("failure")
        if failure is not None:
            if failure["when"] == "now" or (failure["when"] == "processing" and
                                            phase != "queued") or phase == "done":
                self._refund(record)
                return "failed"
            return "queued" if phase == "queued" else "processing"
        if phase != "done":
            return phase
        if block:
            try:
                self.ensure_outputs(record)
            except Exception:  # noqa: BLE001 - the job failed: say so, refund, log why
                log.exception("agents render of %s failed", record["id"])
                self._fail_now(record, "generation_failed")
                return self.state_of(record, block=False)
        return "completed" if self._rendered(record) else "processing"

    def _fail_now(self, record: dict[str, Any], code: str) -> None:
        """Persist a failure found while rendering (visible at once)."""
        with self.locked():
            fresh = self.record(record["id"])
            fresh["failure"] = {"code": code, "when": "now", "reason": REASONS[code]}
            write_json(self._path(record["id"]), fresh)
        record["failure"] = fresh["failure"]

    def _rendered(self, record: dict[str, Any]) -> bool:
        return all(self.output_path(record["id"], i, ext).exists()
                   for i, (_, ext) in enumerate(self.outputs_of(record)))

    def _refund(self, record: dict[str, Any]) -> None:
        """Give a failed generation's charge back, once (persisted in the record)."""
        if record.get("refunded") or not record["cost"]:
            return
        with self.locked():
            fresh = self.record(record["id"])
            if fresh.get("refunded"):
                return
            fresh["refunded"] = record["refunded"] = True
            write_json(self._path(record["id"]), fresh)
            state = self.state()
            state["spent"] = round(state["spent"] - fresh["cost"], 2)
            state["refunded"] = round(state.get("refunded", 0.0) + fresh["cost"], 2)
            write_json(self.root / "state.json", state)

    def ensure_outputs(self, record: dict[str, Any]) -> None:
        """Render the outputs once (a per-generation lock file; other processes wait)."""
        if self._rendered(record):
            return
        with _RENDER_SLOTS, self.locked(f"{record['id']}.lock"):
            if self._rendered(record):
                return
            started = time.monotonic()
            inputs = {k: Path(v) for k, v in record["inputs"].items()}
            size = tuple(record["size"])
            for index, (kind, ext) in enumerate(self.outputs_of(record)):
                out = self.output_path(record["id"], index, ext)
                if kind == "video":
                    frames = aspec.frame_count(record["request"]) \
                        if record["request"]["type"] == "video" else \
                        max(1, round(record["source_seconds"] * 24))
                    memo({"video": record["request"], "size": size, "frames": frames,
                          "inputs": sorted(inputs)}, [inputs[k] for k in sorted(inputs)],
                         [out], lambda: make_video(record["request"], inputs, size,
                                                   frames, out))
                elif kind == "exr":
                    make_exr(self.output_path(record["id"], 0, "mp4"), out)
                else:
                    layer = dict(record["request"], layer=index) if index else \
                        record["request"]
                    memo({"image": layer, "size": size, "inputs": sorted(inputs)},
                         [inputs[k] for k in sorted(inputs)], [out],
                         lambda: make_image(layer, inputs, size, out))
            log.info("agents rendered %s in %.2f s", record["id"], time.monotonic() - started)

    def _prerender(self, record: dict[str, Any]) -> None:
        """Start rendering at once in the background, as the service works while queued."""
        def work() -> None:
            try:
                self.ensure_outputs(record)
            except Exception:  # noqa: BLE001 - the GET that needs it renders and reports
                log.exception("agents pre-render of %s failed", record["id"])

        thread = threading.Thread(target=work, name=f"agents-render-{record['id']}",
                                  daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def wait_for_renders(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def summary(self) -> dict[str, Any]:
        """Counts per model and type, files, credits: what ``emulator account`` prints."""
        by_model: dict[str, dict[str, int]] = {}
        for record in self.records():
            per = by_model.setdefault(record["model"], {})
            per[record["type"]] = per.get(record["type"], 0) + 1
        state = self.state()
        return {"created": state["created"], "generations": by_model,
                "files": self.file_counts(), "credits_spent": state["spent"],
                "credits_refunded": state.get("refunded", 0.0), "budget": state["budget"]}
