"""Timeline items (planned spans with their clips) and the pieces of the smart render.

Pure Python: no ffmpeg here, so the rules that cut the output into pieces are testable on
their own. The frames and their checks are :mod:`reelflow.tasks._timeline`'s, the same
the render plan checks before any spend.

A timeline in frames: item i keeps frames ``[s_i, s_i + L_i)`` of its conformed clip, and
its outgoing transition overlaps the last ``T_i`` of them with the first ``T_i`` frames of
item i+1. The output therefore holds ``sum(L) - sum(T)`` frames. ``pieces_for`` covers
that output with pieces, in order:

* ``CopyPiece``: GOP-aligned frames of one conformed clip that no trim edge or
  transition touches, cut by stream copy;
* ``EncodePiece``: everything else (a partial GOP at a trim edge, a transition or
  the frames a text overlay shows on, widened outward to the neighbouring GOP
  boundaries so the spans beside them stay copyable), re-encoded with the same x264
  settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from reelflow.tasks._ffmpeg import OutputFormat, content_key
from reelflow.tasks._encode import Join, Run
from reelflow.tasks._text import TextOverlaySpec
from reelflow.tasks._timeline import Slot, TimelineSpan, output_frames, resolve

__all__ = ["CopyPiece", "EncodePiece", "Slot", "TextOverlaySpec", "TimelineItem", "check_ranges",
           "pieces_for", "slots_for"]


class TimelineItem(TimelineSpan):
    """One shot on the timeline: a span of a source clip and how it goes into the next.

    ``transition`` leads out of this item into the next one: ``cut``, ``crossfade``,
    ``fade`` (through black) or any ffmpeg xfade transition name (``wipeleft``,
    ``slideright``, ``circleopen``, ``dissolve``, ...). The last item's is ignored.
    """

    source: Path = Field(description="The clip file (any size/rate; it is conformed).")
    source_sha256: str = Field(min_length=8, description="Content hash of the source.")

    @classmethod
    def of(cls, span: TimelineSpan, source: Path, source_sha256: str) -> TimelineItem:
        """The planned ``span`` rendered from ``source``: the same frames, now with a clip."""
        return cls(**dict(span), source=source, source_sha256=source_sha256)

    @property
    def display_name(self) -> str:
        """What messages call it: the label, else the source's file name."""
        return self.label or self.source.name

    @property
    def content_sha256(self) -> str:
        """The source's content hash (it keys every piece cut from it)."""
        return self.source_sha256


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
    """Resolve items to frames and check every transition fits; raise ValueError if not.

    This is :func:`reelflow.tasks._timeline.resolve`, the one definition the plan checks
    before any spend: the assembler renders exactly the timeline the plan accepted.
    """
    return resolve(items, fps)


def check_ranges(slots: list[Slot], totals: list[int], fps: int) -> None:
    """Raise ValueError when an item asks for frames past the end of its conformed clip."""
    problems = [
        f"{sl.name}: frames {sl.start}..{sl.end} ({sl.start / fps:g}s + {sl.frames / fps:g}s) "
        f"run past the end of the clip ({total} frames, {total / fps:g}s)"
        for sl, total in zip(slots, totals) if sl.end > total
    ]
    if problems:
        raise ValueError("; ".join(problems))


def pieces_for(slots: list[Slot], clips: list[Path], totals: list[int],
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
        pos = sl.start  # frames before pos are planned (a transition shares the head)
        for copy_start, copy_end in _copy_spans(sl, total, fmt.gop):
            if copy_start > pos:
                add_run(_run(sl, clip, pos, copy_start), join)
            close()
            key = content_key({"copy": sl.sha256, "range": [copy_start, copy_end],
                               "fmt": fmt.key()})
            pieces.append(CopyPiece(Run(clip, sl.sha256, copy_start, copy_end), total, key))
            pos, join = copy_end, None
        if sl.end > pos:
            add_run(_run(sl, clip, pos, sl.end), join)
        if not sl.t_out:
            close()
        previous = sl
    close()
    assert sum(p.frames for p in pieces) == output_frames(slots), "the pieces do not cover the timeline"
    return pieces


def _copy_spans(sl: Slot, total: int, gop: int) -> list[tuple[int, int]]:
    """The GOP-aligned spans of a slot that no transition, trim edge or overlay touches."""
    start = _ceil_boundary(sl.start + sl.t_in, gop, total)
    end = _floor_boundary(sl.end - sl.t_out, gop, total)
    spans = [(start, end)] if start < end else []
    for window in sl.overlays:  # cut each overlay's frames, widened to whole GOPs, out
        cut_start = _floor_boundary(sl.start + window.start, gop, total)
        cut_end = _ceil_boundary(sl.start + window.end, gop, total)
        spans = [part for a, b in spans
                 for part in ((a, min(b, cut_start)), (max(a, cut_end), b)) if part[0] < part[1]]
    return spans


def _run(sl: Slot, clip: Path, start: int, end: int) -> Run:
    """Clip frames [start, end) of a slot, with the overlays that show on them."""
    offset = start - sl.start
    windows = (w.shifted(offset, end - start) for w in sl.overlays)
    return Run(clip, sl.sha256, start, end, tuple(w for w in windows if w is not None))


def _keyed(piece: EncodePiece, fmt: OutputFormat) -> EncodePiece:
    piece.key = content_key({
        # a run's overlays join its entry only when it has some, so keys of pieces
        # without text are what they were before overlays existed
        "runs": [[r.sha256, r.start, r.end, *([[w.key() for w in r.overlays]]
                                               if r.overlays else [])]
                 for r in piece.runs],
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
