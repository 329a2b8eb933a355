"""What each model accepts, checked per shot before anything is spent.

Private to ``reelflow.flows.shotlist``. Per model: its resolutions, durations and
aspect ratios (``reelflow.spec``); the fields only one API has (camera, upscale and
audio are ray-2's; hdr, exr, keyframes, edit and reframe ray-3.2's); and every
combination the Agents API refuses for ray-3.2 (Luma's guides/model and
guides/videos/generation, the luma-agents SDK's field docs): 10s with start/end
frames or loop, HDR below 720p or at 10s, EXR without HDR, loop with HDR, keyframes
with start/end/loop or off the 24 fps grid, an edit or a reframe with frames of its
own, a reframe in HDR. A ``{shot: ID}`` chain stays within one API (a generation id
of one API means nothing to the other). ``Ray32Fields`` resolves ray-3.2's fields for
the Loader: pinned keyframes onto the 24 fps grid, an edit's or a reframe's source and
its length (an edit lasts as long as its source).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from reelflow import spec
from reelflow.flows._shotlist_checks import clip_problem, outside_problem
from reelflow.flows._shotlist_input import ShotIn, ShotRefIn, numbers_as_text
from reelflow.flows._shotlist_messages import fmt_num
# Imported when a load runs (by ``_shotlist_resolve``), once these models exist.
from reelflow.flows.shotlist import EditRef, ImageRef, PinnedImage, ShotRef

__all__ = ["Ray32Fields", "check_chains", "clip_duration", "clip_seconds", "keyframe_indexes",
           "model_checks", "strength_name"]

Report = Callable[[str, str], None]

_RAY2_ONLY = (("camera", "camera concepts"), ("upscale", "upscale"), ("audio", "generated audio"))
_RAY32_ONLY = ("hdr", "exr", "keyframes", "edit", "reframe")


def strength_name(strength: float) -> str:
    """An edit's strength 0..1 as the API's name (0: adhere_1 ... 1: reimagine_3)."""
    return spec.EDIT_STRENGTHS[round(strength * (len(spec.EDIT_STRENGTHS) - 1))]


def _one_of(values: Sequence[str]) -> str:
    return ", ".join(values[:-1]) + f" or {values[-1]}" if len(values) > 1 else values[0]


def model_checks(s: Any, values: dict[str, Any], given: set[str], report: Report) -> None:
    """The shot's model accepts its resolution, duration, aspect ratio and features."""
    model, res = values["model"], values["resolution"]
    duration, aspect = values.get("duration"), values["aspect_ratio"]
    if res is not None and res not in spec.MODEL_RESOLUTIONS[model]:
        report("resolution", f"{model} does not generate {res}; it takes "
                             f"{_one_of(spec.MODEL_RESOLUTIONS[model])}")
    if isinstance(duration, str) and duration not in spec.MODEL_DURATIONS[model] \
            and not (s.edit or s.reframe):
        report("duration", f"{model} clips last {_one_of(spec.MODEL_DURATIONS[model])}, "
                           f"not {duration}")
    if aspect not in spec.MODEL_ASPECT_RATIOS[model]:
        report("aspect_ratio", f"{model} does not generate {aspect}; it takes "
                               f"{_one_of(spec.MODEL_ASPECT_RATIOS[model])}")
    if spec.MODEL_API[model] != spec.AGENTS_API:
        for field in _RAY32_ONLY:
            if field in given and getattr(s, field):
                report(field, f"{field} needs model ray-3.2; this shot is {model}")
        return
    for field, what in _RAY2_ONLY:
        if field in given:
            report(field, f"ray-3.2 has no {what} (a ray-2 / ray-flash-2 feature)")
    _ray32_combinations(s, res, duration, report)


def _ray32_combinations(s: Any, res: str | None, duration: Any, report: Report) -> None:
    """Every combination of ray-3.2 options the Agents API refuses."""
    ten = duration == "10s"
    frames = [f for f in ("start", "end") if getattr(s, f) is not None]
    if ten and frames and not (s.edit or s.reframe):
        report("duration", f"a 10s ray-3.2 clip cannot have {' or '.join(frames)} frames "
                           "(10s is text-to-video or keyframes); use 5s")
    if ten and s.loop:
        report("loop", "ray-3.2 does not loop 10s clips; use 5s")
    if s.hdr and res is not None and res not in spec.HDR_RESOLUTIONS:
        report("hdr", f"HDR needs 720p or 1080p; this shot is {res}")
    if s.hdr and ten and not s.edit:
        report("hdr", "ray-3.2 generates HDR clips of 5s; this shot is 10s")
    if s.exr and not s.hdr:
        report("exr", "EXR export needs hdr: true")
    if s.loop and s.hdr:
        report("loop", "ray-3.2 does not loop HDR clips")
    if s.keyframes:
        for field in frames:
            report("keyframes", f"keyframes replace start and end frames: remove {field}")
        if s.loop:
            report("keyframes", "keyframes cannot be combined with loop")
    for source, what in (("edit", "an edit takes its frames from its source"),
                         ("reframe", "a reframe takes its frames from its source shot")):
        if getattr(s, source) is None:
            continue
        for field in ("start", "end", "keyframes", "loop", *(("edit",) if source == "reframe" else ())):
            if getattr(s, field):
                report(field, f"{what}; {field} does not apply")
    if s.reframe is not None and s.hdr:
        report("hdr", "ray-3.2 does not reframe in HDR")


def keyframe_indexes(s: Any, seconds: float, report: Report) -> list[int] | None:
    """Each pinned keyframe's frame on the 24 fps grid (round(at x 24)), or None when one
    falls after the clip's end or two land on one frame."""
    last = round(seconds * spec.FRAME_RATE)
    indexes: list[int] = []
    ok = True
    for i, keyframe in enumerate(s.keyframes):
        index = round(keyframe.at * spec.FRAME_RATE)
        if index > last:
            report(f"keyframes[{i}].at", f"{fmt_num(keyframe.at)}s is after the end of the "
                                         f"{fmt_num(seconds)}s clip (its last frame is {last})")
            ok = False
        elif index in indexes:
            report(f"keyframes[{i}].at", f"{fmt_num(keyframe.at)}s lands on frame {index}, as "
                                         f"keyframes[{indexes.index(index)}] does")
            ok = False
        indexes.append(index)
    return indexes if ok else None


def check_chains(shots: Sequence[Any], problems) -> None:
    """A ``{shot: ID}`` (start, end, edit source, reframe) names a shot of the same API."""
    by_id = {shot.id: shot for shot in shots if shot is not None}
    for shot in by_id.values():
        if shot.is_card:
            continue
        fields = (("start", shot.start), ("end", shot.end),
                  ("edit.source", shot.edit.source if shot.edit else None), ("reframe", shot.reframe))
        for field, ref in fields:
            target = by_id.get(getattr(ref, "shot", None))
            if target is None or target.is_card:
                continue
            if spec.MODEL_API[target.model] != spec.MODEL_API[shot.model]:
                problems.shot(shot.index, shot.id, field,
                              f"{target.id!r} is a {target.model} shot and this one {shot.model}: "
                              "a generation chain stays within one Luma API (ray-2 and "
                              "ray-flash-2, or ray-3.2)")


class Ray32Fields:
    """The Loader's resolution of hdr, exr, keyframes, edit and reframe (a mixin: it uses
    the Loader's ``raw_shots``, ``_defaults``, ``_clips``, ``confine``, ``_local`` and
    ``_keyframe``)."""

    def _ray32_values(self, s: ShotIn, values: dict[str, Any], report: Report) -> None:
        """hdr, exr, pinned keyframes, edit and reframe (checked by ``model_checks``)."""
        values.update(hdr=bool(s.hdr), exr=bool(s.exr))
        if s.keyframes:
            images = [self._keyframe(k.image, f"keyframes[{i}].image", report)
                      for i, k in enumerate(s.keyframes)]
            seconds = clip_seconds(values["duration"])
            indexes = keyframe_indexes(s, seconds, report) if seconds is not None else None
            if indexes is not None:
                values["keyframes"] = tuple(PinnedImage(at=k.at, index=index, image=image)
                                            for k, index, image in zip(s.keyframes, indexes, images))
        if s.edit is not None:
            source = s.edit.source
            ref = ShotRef(shot=source.shot) if isinstance(source, ShotRefIn) else \
                ImageRef(path=self._local(source), video=True)
            values["edit"] = EditRef(source=ref, strength=strength_name(s.edit.strength))
            if isinstance(ref, ImageRef) and (problem := self._clip(source)[0]):
                report("edit.source", problem)
        if s.reframe is not None:
            values["reframe"] = ShotRef(shot=s.reframe.shot)
            if s.aspect_ratio is not None and s.aspect_ratio != s.reframe.aspect_ratio:
                report("aspect_ratio", "a reframe's aspect ratio is reframe.aspect_ratio; "
                                       "remove aspect_ratio")
            values["aspect_ratio"] = s.reframe.aspect_ratio
            if values["prompt"] is None:
                values["prompt"] = self._source_prompt(s.reframe.shot)
                if values["prompt"] is None and self._raw_shot(s.reframe.shot) is not None:
                    report("prompt", f"missing; shot {s.reframe.shot!r} has no prompt to reuse")

    def _clip(self, text: str) -> tuple[str | None, float | None]:
        """(problem, seconds) of a local video clip named ``text``, checked once per path."""
        path = self._local(text)
        if path not in self._clips:
            outside = outside_problem(path, self.confine, text)
            self._clips[path] = (outside, None) if outside else \
                clip_problem(path, text, spec.EDIT_MAX_SECONDS)
        return self._clips[path]

    def _raw_shot(self, shot_id: str) -> dict[Any, Any] | None:
        return next((raw for raw in self.raw_shots
                     if isinstance(raw, dict) and numbers_as_text(raw.get("id")) == shot_id), None)

    def _source_prompt(self, shot_id: str) -> str | None:
        raw = self._raw_shot(shot_id)
        prompt = raw.get("prompt") if raw else None
        return prompt if isinstance(prompt, str) else None

    def _source_duration(self, s: ShotIn, seen: frozenset[str] = frozenset()) -> str | float | None:
        """An edit's or a reframe's length: its source's, followed through chains of them
        (None where a source is unknown, cyclic or unusable: reported where it is)."""
        target: str | None = s.reframe.shot if s.reframe else None
        if s.edit is not None:
            if not isinstance(s.edit.source, ShotRefIn):
                return self._clip(s.edit.source)[1]
            target = s.edit.source.shot
        raw = self._raw_shot(target) if target not in seen | {s.id} else None
        if raw is None:
            return None
        try:
            source = ShotIn.model_validate({**raw, "id": target})
        except ValidationError:
            return None
        if source.edit is not None or source.reframe is not None:
            return self._source_duration(source, seen | {s.id})
        return clip_duration(source.duration if source.duration is not None
                              else self._defaults.duration)



def clip_seconds(duration: str | float | None) -> float | None:
    """A generated clip's length in seconds ("5s" or a source's length)."""
    return float(spec.DURATIONS[duration]) if isinstance(duration, str) else duration


def clip_duration(value: str | float | None) -> str | None:
    """A generated clip's duration as "5s"/"9s" (5 and 9 accepted too), else None."""
    if isinstance(value, str):
        return value if value in spec.DURATIONS else None
    if value is not None:
        for name, seconds in spec.DURATIONS.items():
            if value == seconds:
                return name
    return None
