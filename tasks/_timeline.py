"""The frame timeline: spans of clips resolved to whole frames at the output rate, checked once.

Pure Python (no Prefect, no ffmpeg is run): ``reelflow plan`` and the checks before
``render`` build it from the shot list before anything is spent, and the assembler
renders the same one (:func:`reelflow.tasks._pieces.slots_for` is :func:`resolve`).

At ``fps`` frames a second, span i keeps frames ``[s_i, s_i + L_i)`` of its clip, with
``s_i = round(start_s * fps)`` and ``L_i = round(length_s * fps)``; its outgoing
transition overlaps its last ``T_i = round(transition_s * fps)`` frames with the first
``T_i`` of span i+1 (``T = 0`` for a cut and for the last span, whose transition leads
nowhere). The output holds ``sum(L) - sum(T)`` frames. A timeline is refused when

* a span keeps no frame (``L_i < 1``), or a transition rounds to no frame;
* a transition is longer than either span it joins (``T_i > L_i`` or ``T_i > L_{i+1}``);
* a span's incoming and outgoing transitions overlap (``T_{i-1} + T_i > L_i``);
* a text overlay shows on no frame of its span.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from reelflow.errors import TimelineError
from reelflow.spec import TRANSITION_TYPES, xfade_name
from reelflow.tasks._text import OverlayWindow, TextOverlaySpec

__all__ = ["Slot", "TimelineError", "TimelineProblem", "TimelineSpan", "frame_problems",
           "output_frames", "resolve"]

ProblemKind = Literal["length", "transition", "overlap", "text"]


class TimelineSpan(BaseModel):
    """One shot on the timeline, before it has a clip: what it keeps and how it goes on.

    ``transition`` leads out of this span into the next one: ``cut``, ``crossfade``,
    ``fade`` (through black) or any ffmpeg xfade transition name (``wipeleft``,
    ``slideright``, ``circleopen``, ``dissolve``, ...). The last span's is ignored.
    """

    model_config = ConfigDict(frozen=True)

    start_s: float = Field(default=0.0, ge=0, description="First second of the clip used.")
    length_s: float = Field(gt=0, description="Seconds of the clip used.")
    transition: str = Field(default="cut", description="Transition into the next item.")
    transition_s: float = Field(default=0.0, ge=0, description="Transition length in seconds.")
    label: str = Field(default="", description="Name used in messages (the shot id).")
    overlays: tuple[TextOverlaySpec, ...] = Field(
        default=(), description="Text drawn over this item, each on its own time window.")

    @field_validator("transition")
    @classmethod
    def _known_transition(cls, value: str) -> str:
        if value not in TRANSITION_TYPES:
            raise ValueError(f"unknown transition {value!r}: use cut, crossfade, fade or an "
                             "ffmpeg xfade transition such as wipeleft or dissolve")
        return value

    @property
    def xfade_name(self) -> str:
        """The ffmpeg xfade transition this span's transition renders with."""
        return xfade_name(self.transition)

    @property
    def display_name(self) -> str:
        """What messages call it: the label."""
        return self.label

    @property
    def content_sha256(self) -> str:
        """The clip's content hash; a span has no clip yet."""
        return ""


@dataclass(frozen=True)
class Slot:
    """A span resolved to frames: start, length and the transitions on either side."""

    index: int
    name: str
    sha256: str
    start: int
    frames: int
    t_in: int
    t_out: int
    transition: str  # xfade name of the outgoing transition ("cut" when t_out == 0)
    overlays: tuple[OverlayWindow, ...] = ()  # windows counted from the item's first frame

    @property
    def end(self) -> int:
        """One past the last clip frame used."""
        return self.start + self.frames


@dataclass(frozen=True)
class TimelineProblem:
    """Why span ``index`` (0-based) cannot be rendered; ``message`` omits the span's name."""

    index: int
    kind: ProblemKind
    message: str


Namer = Callable[[int], str]


def resolve(spans: Sequence[TimelineSpan], fps: int, name: Namer | None = None) -> list[Slot]:
    """The spans in frames; raise :class:`TimelineError` when any does not fit.

    ``name(i)`` is what messages call span i (default ``item N (label)``).
    """
    if not spans:
        raise ValueError("the timeline is empty: nothing to assemble")
    name = name or _item_names(spans)
    problems = frame_problems(spans, fps, name)
    if problems:
        raise TimelineError(problems, [name(i) for i in range(len(spans))])
    lengths, outs = _lengths(spans, fps), _outs(spans, fps)
    return [
        Slot(index=i, name=name(i), sha256=span.content_sha256, start=round(span.start_s * fps),
             frames=lengths[i], t_in=outs[i - 1] if i else 0, t_out=outs[i],
             transition=span.xfade_name if outs[i] else "cut",
             overlays=_windows(span, lengths[i], fps)[0])
        for i, span in enumerate(spans)
    ]


def output_frames(slots: Sequence[Slot]) -> int:
    """Frames of the rendered sequence: every slot's, less each transition's overlap."""
    return sum(sl.frames for sl in slots) - sum(sl.t_out for sl in slots)


def frame_problems(spans: Sequence[TimelineSpan | None], fps: int,
                   name: Namer | None = None) -> list[TimelineProblem]:
    """Every reason the spans cannot be rendered at ``fps``, in order.

    A ``None`` span is unknown (it had problems of its own): nothing that depends on it
    is checked.
    """
    name = name or _item_names(spans)
    lengths, outs = _lengths(spans, fps), _outs(spans, fps)
    problems: list[TimelineProblem] = []
    for i, span in enumerate(spans):
        if span is None:
            continue
        if lengths[i] < 1:
            problems.append(TimelineProblem(
                i, "length", f"length {span.length_s:g}s is shorter than one frame at {fps} fps"))
        if i + 1 < len(spans):
            problems += _transition_problems(spans, i, lengths, outs, fps, name)
        if i:
            problems += _overlap_problems(i, lengths, outs, fps, span)
        if lengths[i] >= 1:
            problems += [TimelineProblem(i, "text", text)
                         for text in _windows(span, lengths[i], fps)[1]]
    return problems


def _transition_problems(spans: Sequence[TimelineSpan | None], i: int, lengths: list[int],
                         outs: list[int], fps: int, name: Namer) -> list[TimelineProblem]:
    span, nxt = spans[i], spans[i + 1]
    assert span is not None
    if span.transition == "cut":
        return []
    if span.transition_s > 0 and outs[i] == 0:
        return [TimelineProblem(i, "transition",
                                f"{span.transition} of {span.transition_s:g}s is shorter than one "
                                f"frame at {fps} fps: use cut, or at least {1 / fps:.3g}s")]
    if nxt is None:
        return []
    what = f"{span.transition} of {span.transition_s:g}s ({outs[i]} frames) into {name(i + 1)}"
    return [TimelineProblem(i, "transition",
                            f"{what} does not fit: {name(j)} has only {lengths[j]} frames "
                            f"({spans[j].length_s:g}s at {fps} fps)")
            for j in (i, i + 1) if 0 < lengths[j] < outs[i]]


def _overlap_problems(i: int, lengths: list[int], outs: list[int], fps: int,
                      span: TimelineSpan) -> list[TimelineProblem]:
    t_in, t_out = outs[i - 1], outs[i]
    if not (t_in and t_out) or t_in > lengths[i] or t_out > lengths[i]:
        return []  # none, or one already does not fit on its own
    if t_in + t_out <= lengths[i]:
        return []
    return [TimelineProblem(i, "overlap",
                            f"incoming ({t_in}) and outgoing ({t_out}) transition frames overlap: "
                            f"together more than its {lengths[i]} frames "
                            f"({span.length_s:g}s at {fps} fps)")]


def _lengths(spans: Sequence[TimelineSpan | None], fps: int) -> list[int]:
    return [0 if span is None else round(span.length_s * fps) for span in spans]


def _outs(spans: Sequence[TimelineSpan | None], fps: int) -> list[int]:
    """Transition frames out of each span; 0 for cuts, unknown spans and the last span."""
    outs = [0 if span is None or span.transition == "cut" else round(span.transition_s * fps)
            for span in spans[:-1]]
    return outs + [0] if spans else []


def _windows(span: TimelineSpan, length: int, fps: int) -> tuple[tuple[OverlayWindow, ...], list[str]]:
    """The span's overlays in its frames, and why any shows on no frame (an end past the
    span is cut to it; a window starting at or after the span's end shows on nothing)."""
    windows, problems = [], []
    for n, spec in enumerate(span.overlays, 1):
        start, end = spec.frames(length, fps)
        end = min(end, length)
        if start >= end:
            problems.append(f"text {n} ({spec.content[:30]!r}) shows on no frame: from "
                            f"{start / fps:g}s to {end / fps:g}s of a {length / fps:g}s item")
        else:
            windows.append(OverlayWindow(spec, start, end))
    return tuple(windows), problems


def _item_names(spans: Sequence[TimelineSpan | None]) -> Namer:
    return lambda i: f"item {i + 1} ({getattr(spans[i], 'display_name', '')})"
