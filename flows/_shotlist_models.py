"""What each model accepts, checked per shot before anything is spent.

Private to ``reelflow.flows.shotlist``. Per model: its resolutions, durations and
aspect ratios (``reelflow.spec``); the fields only one API has (camera, upscale and
audio are ray-2's; hdr, exr, keyframes, edit and reframe ray-3.2's); and every
combination the Agents API refuses for ray-3.2 (Luma's guides/model and
guides/videos/generation, the luma-agents SDK's field docs): 10s with start/end
frames or loop, HDR below 720p or at 10s, EXR without HDR, loop with HDR, keyframes
with start/end/loop or off the 24 fps grid, an edit or a reframe with frames of its
own, a reframe in HDR. A ``{shot: ID}`` chain stays within one API (a generation id
of one API means nothing to the other).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from reelflow import spec
from reelflow.flows._shotlist_messages import fmt_num

__all__ = ["check_chains", "keyframe_indexes", "model_checks", "strength_name"]

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
