"""Lazy rendering for the Account: one render per revision, keyframe inputs first.

A mixin so account.py stays about the account's records; it uses the Account's
``root``, ``record``, ``asset_path``, ``_record_path``, ``_locked``, ``_phase`` and
``render_wait``. Renders run in daemon threads, at most two ffmpeg at a time per
process, each under a lock file so two processes never render the same clip.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from reelflow.emulator._util import NotFound, stem as _stem, write_json as _write_json
from reelflow.emulator.faults import INPUT_FRAMES_FAILED
from reelflow.emulator.keyframes import InputUnavailable, extract_frame, fetch_image
from reelflow.emulator.clips import ClipJob, make_clip
from reelflow.emulator.clip_cache import memo

__all__ = ["LazyClips"]

log = logging.getLogger("reelflow.emulator.account")

_RENDER_SLOTS = 2  # concurrent ffmpeg renders per process: the machines have 2 cores


class LazyClips:
    """Render threads, their errors, and keyframe input preparation."""

    def _init_rendering(self) -> None:
        self._renders: dict[str, threading.Thread] = {}
        self._render_errors: dict[str, BaseException] = {}
        self._render_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(_RENDER_SLOTS)

    def ensure_rendered(self, record: dict[str, Any], rev: int, *, wait: float) -> bool:
        """Start (once) the render of ``rev`` and wait up to ``wait`` s; True when on disk."""
        mp4 = self.asset_path(record["id"], rev, "mp4")
        if mp4.exists():
            return True
        key = _stem(record["id"], rev)
        with self._render_lock:
            error = self._render_errors.pop(key, None)
            if error is not None:  # report once; the next call tries again
                raise error
            worker = self._renders.get(key)
            if worker is None or not worker.is_alive():
                worker = threading.Thread(target=self._render_worker, args=(record, rev),
                                          name=f"render-{key}", daemon=True)
                self._renders[key] = worker
                worker.start()
        if wait > 0:
            worker.join(wait)
        if mp4.exists():
            return True
        with self._render_lock:
            error = self._render_errors.pop(key, None)
        if error is not None:
            raise error
        return False

    def _render_worker(self, record: dict[str, Any], rev: int) -> None:
        """Render one revision under its lock file (another process may be at it too).

        Keyframe inputs are prepared first, outside the render slots: a referenced
        generation may itself need a slot to render.
        """
        key = _stem(record["id"], rev)
        mp4 = self.asset_path(record["id"], rev, "mp4")
        jpg = self.asset_path(record["id"], rev, "jpg")
        try:
            try:
                record = self.record(record["id"])  # fresh: inputs stored by earlier renders
                frames = self._prepare_inputs(record)
            except InputUnavailable as err:
                log.warning("generation %s fails: %s", record["id"], err)
                self._set_failure(record["id"], INPUT_FRAMES_FAILED)
                return
            except NotFound:  # deleted meanwhile
                return
            revision = record["revisions"][rev]
            job = ClipJob(record["request"], revision["resolution"], revision["audio_prompt"],
                            frames=tuple(sorted(frames.items())))
            with self._slots, self._locked(f"{key}.lock"):
                if mp4.exists():
                    return
                started = time.monotonic()
                what = {"dm": job.request, "resolution": job.resolution,
                        "audio": job.audio_prompt, "frames": [n for n, _ in job.frames]}
                memo(what, [p for _, p in job.frames], [jpg, mp4],
                     lambda: make_clip(job, mp4, jpg))
                log.info("rendered %s in %.2f s", key, time.monotonic() - started)
            if not self._record_path(record["id"]).exists():  # deleted while rendering
                mp4.unlink(missing_ok=True)
                jpg.unlink(missing_ok=True)
        except BaseException as exc:  # noqa: BLE001 - handed to the request that waits
            log.exception("render of %s failed", key)
            with self._render_lock:
                self._render_errors[key] = exc
        finally:
            with self._render_lock:
                if self._renders.get(key) is threading.current_thread():
                    del self._renders[key]

    def prefetch_images(self, record: dict[str, Any]) -> None:
        """Fetch a new generation's image keyframes now, in the background, as Luma does.

        A URL is fetched while it is fresh (a presigned URL expires, a loopback server
        stops with the run that served it), not when the lazy render finally needs it.
        """
        if not any(isinstance(f, dict) and f.get("type") == "image"
                   for f in (record["request"].get("keyframes") or {}).values()):
            return
        key = f"{record['id']}-fetch"
        worker = threading.Thread(target=self._prefetch_worker, args=(record,),
                                  name=f"fetch-{record['id']}", daemon=True)
        with self._render_lock:
            self._renders[key] = worker
        worker.start()

    def _prefetch_worker(self, record: dict[str, Any]) -> None:
        try:
            self._prepare_inputs(record, images_only=True)
        except InputUnavailable as err:
            log.warning("generation %s fails: %s", record["id"], err)
            self._set_failure(record["id"], INPUT_FRAMES_FAILED)
        except Exception:  # noqa: BLE001 - the render tries again and reports
            log.exception("prefetch for %s failed", record["id"])
        finally:
            with self._render_lock:
                if self._renders.get(f"{record['id']}-fetch") is threading.current_thread():
                    del self._renders[f"{record['id']}-fetch"]

    def _prepare_inputs(self, record: dict[str, Any], *,
                        images_only: bool = False) -> dict[str, Path]:
        """Local files for frame0/frame1: fetched images or frames of referenced clips."""
        frames: dict[str, Path] = {}
        inputs = self.root / "inputs"
        for name, frame in sorted((record["request"].get("keyframes") or {}).items()):
            if not isinstance(frame, dict):
                continue
            if frame.get("type") == "image":
                stored = (record.get("inputs") or {}).get(name)
                if stored is None or not (inputs / stored).exists():
                    stored = fetch_image(frame["url"], inputs)
                    self._store_input(record["id"], name, stored)
                frames[name] = inputs / stored
            elif frame.get("type") == "generation" and not images_only:
                frames[name] = self._reference_frame(frame["id"], name, inputs)
        return frames

    def _reference_frame(self, ref_id: str, name: str, inputs: Path) -> Path:
        """frame0 = the referenced clip's last frame (extend); frame1 = its first."""
        try:
            ref = self.record(ref_id)
        except NotFound:
            raise InputUnavailable(f"generation {ref_id} no longer exists") from None
        rev = len(ref["revisions"]) - 1
        if ref.get("failure") is not None or \
                self._phase(ref["revisions"][rev], time.time()) != "done" or \
                not self.ensure_rendered(ref, rev, wait=self.render_wait):
            raise InputUnavailable(f"generation {ref_id} has no completed clip")
        which = "last" if name == "frame0" else "first"
        dest = inputs / f"{_stem(ref_id, rev)}-{which}.png"
        extract_frame(self.asset_path(ref_id, rev, "mp4"), which, dest)
        return dest

    def _store_input(self, gen_id: str, name: str, stored: str) -> None:
        """Remember which fetched file a keyframe is, so re-renders use the same bytes."""
        with self._locked():
            try:
                record = self.record(gen_id)
            except NotFound:
                return
            record.setdefault("inputs", {})[name] = stored
            _write_json(self._record_path(gen_id), record)

    def wait_for_renders(self, timeout: float = 30.0) -> None:
        """Join running renders (used on stop, so no temp dirs are left behind)."""
        deadline = time.monotonic() + timeout
        with self._render_lock:
            workers = list(self._renders.values())
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def _set_failure(self, gen_id: str, reason: str) -> None:
        """Persist a failure found while preparing a render (visible at once)."""
        with self._locked():
            try:
                record = self.record(gen_id)
            except NotFound:
                return
            if record.get("failure") is None:
                record["failure"] = {"reason": reason, "when": "now"}
                _write_json(self._record_path(gen_id), record)
