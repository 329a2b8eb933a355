"""Timeline items, their validation in frames, and the piece plan of the smart render.

Pure Python: no ffmpeg here, so the planning rules are testable on their own.

A timeline in frames: item i keeps frames ``[s_i, s_i + L_i)`` of its conformed clip, and
its outgoing transition overlaps the last ``T_i`` of them with the first ``T_i`` frames of
item i+1. The output therefore holds ``sum(L) - sum(T)`` frames. The plan covers that
output with pieces, in order:

* ``CopyPiece``: GOP-aligned frames of one conformed clip that no trim edge or
  transition touches, cut by stream copy;
* ``EncodePiece``: everything else (a partial GOP at a trim edge, or a transition
  widened outward to the neighbouring GOP boundaries so the spans beside it stay
  copyable), re-encoded with the same x264 settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._ffmpeg import XFADE_TRANSITIONS, OutputFormat, content_key
from ._render import Join, Run

__all__ = ["CopyPiece", "EncodePiece", "Slot", "TimelineItem", "check_ranges", "plan_pieces",
           "slots_for"]

#: reelflow's names for transitions that are not ffmpeg's xfade names.
_ALIASES = {"crossfade": "fade", "fade": "fadeblack"}


class TimelineItem(BaseModel):
    """One shot on the timeline: a span of a source clip and how it goes into the next.

    ``transition`` leads out of this item into the next one: ``cut``, ``crossfade``,
    ``fade`` (through black) or any ffmpeg xfade transition name (``wipeleft``,
    ``slideright``, ``circleopen``, ``dissolve``, ...). The last item's is ignored.
    """

    model_config = ConfigDict(frozen=True)

    source: Path = Field(description="The clip file (any size/rate; it is conformed).")
    source_sha256: str = Field(min_length=8, description="Content hash of the source.")
    start_s: float = Field(default=0.0, ge=0, description="First second of the clip used.")
    length_s: float = Field(gt=0, description="Seconds of the clip used.")
    transition: str = Field(default="cut", description="Transition into the next item.")
    transition_s: float = Field(default=0.0, ge=0, description="Transition length in seconds.")
    label: str = Field(default="", description="Name used in messages (the shot id).")

    @field_validator("transition")
    @classmethod
    def _known_transition(cls, value: str) -> str:
        if value != "cut" and value not in _ALIASES and value not in XFADE_TRANSITIONS:
            raise ValueError(f"unknown transition {value!r}: use cut, crossfade, fade or an "
                             "ffmpeg xfade transition such as wipeleft or dissolve")
        return value

    @property
    def xfade_name(self) -> str:
        """The ffmpeg xfade transition this item's transition renders with."""
        return _ALIASES.get(self.transition, self.transition)


@dataclass(frozen=True)
class Slot:
    """An item resolved to frames: start, length and the transitions on either side."""

    index: int
    name: str
    sha256: str
    start: int
    frames: int
    t_in: int
    t_out: int
    transition: str  # xfade name of the outgoing transition ("cut" when t_out == 0)

    @property
    def end(self) -> int:
        """One past the last clip frame used."""
        return self.start + self.frames


@dataclass
class CopyPiece:
    """Frames ``[run.start, run.end)`` of a conformed clip of ``total`` frames, copied."""

    run: Run
    total: int
    key: str

    @property
    def frames(self) -> int:
        """Frames this piece contributes."""
        return self.run.frames


@dataclass
class EncodePiece:
    """A re-encoded seam: runs joined by ``joins`` (one fewer than runs)."""

    runs: list[Run]
    joins: list[Join] = field(default_factory=list)
    key: str = ""

    @property
    def frames(self) -> int:
        """Frames this piece contributes (transitions overlap their two runs)."""
        return sum(r.frames for r in self.runs) - sum(j.frames for j in self.joins)


def slots_for(items: list[TimelineItem], fps: int) -> list[Slot]:
    """Resolve items to frames and check every transition fits; raise ValueError if not."""
    if not items:
        raise ValueError("the timeline is empty: nothing to assemble")
    names = [f"item {i + 1} ({it.label or it.source.name})" for i, it in enumerate(items)]
    starts = [round(it.start_s * fps) for it in items]
    lengths = [round(it.length_s * fps) for it in items]
    outs = [_transition_frames(it, fps) for it in items[:-1]] + [0]
    problems = []
    for i, (name, length) in enumerate(zip(names, lengths)):
        if length < 1:
            problems.append(f"{name}: length {items[i].length_s}s is shorter than one frame "
                            f"at {fps} fps")
    for i, t in enumerate(outs):
        if not t:
            continue
        what = (f"{names[i]}: {items[i].transition} of {items[i].transition_s}s "
                f"({t} frames) into {names[i + 1]}")
        for j in (i, i + 1):
            if t > lengths[j]:
                problems.append(f"{what} does not fit: {names[j]} has only {lengths[j]} frames")
    for i in range(1, len(items) - 1):
        t_in, t_out = outs[i - 1], outs[i]
        if t_in and t_out and t_in + t_out > lengths[i]:
            problems.append(f"{names[i]}: incoming ({t_in}) and outgoing ({t_out}) transition "
                            f"frames overlap: together more than its {lengths[i]} frames")
    if problems:
        raise ValueError("; ".join(problems))
    return [
        Slot(index=i, name=names[i], sha256=it.source_sha256, start=starts[i],
             frames=lengths[i], t_in=outs[i - 1] if i else 0, t_out=outs[i],
             transition=it.xfade_name if outs[i] else "cut")
        for i, it in enumerate(items)
    ]


def _transition_frames(item: TimelineItem, fps: int) -> int:
    return 0 if item.transition == "cut" else round(item.transition_s * fps)


def check_ranges(slots: list[Slot], totals: list[int], fps: int) -> None:
    """Raise ValueError when an item asks for frames past the end of its conformed clip."""
    problems = [
        f"{sl.name}: frames {sl.start}..{sl.end} ({sl.start / fps:g}s + {sl.frames / fps:g}s) "
        f"run past the end of the clip ({total} frames, {total / fps:g}s)"
        for sl, total in zip(slots, totals) if sl.end > total
    ]
    if problems:
        raise ValueError("; ".join(problems))


def plan_pieces(slots: list[Slot], clips: list[Path], totals: list[int],
                fmt: OutputFormat) -> list[CopyPiece | EncodePiece]:
    """Cover the output with copyable GOP spans and the fewest re-encoded frames around them.

    Encoded frames are merged into one piece only across a transition (which needs both
    sides anyway); a cut always ends a piece, so an item's trim-edge pieces do not depend
    on its neighbours and survive reordering.
    """
    pieces: list[CopyPiece | EncodePiece] = []
    open_piece: EncodePiece | None = None

    def add_run(run: Run, join: Join | None) -> None:
        nonlocal open_piece
        if open_piece is None:
            open_piece = EncodePiece([run])
        else:
            assert join is not None, "an open seam must continue through a transition"
            open_piece.runs.append(run)
            open_piece.joins.append(join)

    def close() -> None:
        nonlocal open_piece
        if open_piece is not None:
            pieces.append(_keyed(open_piece, fmt))
            open_piece = None

    previous: Slot | None = None
    for sl, clip, total in zip(slots, clips, totals):
        join = Join(previous.transition, previous.t_out) if previous and sl.t_in else None
        solo_start, solo_end = sl.start + sl.t_in, sl.end - sl.t_out
        first = sl.start if sl.t_in else solo_start  # a transition takes the head frames
        copy_start = _ceil_boundary(solo_start, fmt.gop, total)
        copy_end = _floor_boundary(solo_end, fmt.gop, total)
        if copy_start < copy_end:
            if copy_start > first:
                add_run(Run(clip, sl.sha256, first, copy_start), join)
            close()
            span = Run(clip, sl.sha256, copy_start, copy_end)
            key = content_key({"copy": sl.sha256, "range": [copy_start, copy_end],
                               "fmt": fmt.key()})
            pieces.append(CopyPiece(span, total, key))
            if sl.end > copy_end:
                add_run(Run(clip, sl.sha256, copy_end, sl.end), None)
        else:
            add_run(Run(clip, sl.sha256, first, sl.end), join)
        if not sl.t_out:
            close()
        previous = sl
    close()
    expected = sum(sl.frames for sl in slots) - sum(sl.t_out for sl in slots)
    assert sum(p.frames for p in pieces) == expected, "piece plan does not cover the timeline"
    return pieces


def _keyed(piece: EncodePiece, fmt: OutputFormat) -> EncodePiece:
    piece.key = content_key({
        "runs": [[r.sha256, r.start, r.end] for r in piece.runs],
        "joins": [[j.transition, j.frames] for j in piece.joins],
        "fmt": fmt.key(),
    })
    return piece


def _ceil_boundary(frame: int, gop: int, total: int) -> int:
    """The first frame >= ``frame`` where a closed GOP starts (the clip end counts)."""
    return min(-(-frame // gop) * gop, total)


def _floor_boundary(frame: int, gop: int, total: int) -> int:
    """The last frame <= ``frame`` where a closed GOP starts (the clip end counts)."""
    return total if frame >= total else (frame // gop) * gop
