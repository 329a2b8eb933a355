"""The shot list's frame timeline: every shot as a span in whole frames, checked before spend.

The loader runs :func:`check_timeline` right after validation, so a list whose shots do
not fit in frames at the output rate (a trim shorter than one frame, transitions that
overlap once rounded to frames, ...) is a ``ShotListError`` line before anything is
paid. :func:`spans_for` is what the plan hands the render, and the assembler resolves
those spans with the same :func:`reelflow.tasks._timeline.resolve`: the output has the
frames the plan counted.

Pure code: no Prefect, no ffmpeg.
"""

from __future__ import annotations

from collections.abc import Sequence

from reelflow.errors import ShotListError
from reelflow.flows._shotlist_checks import Problems
from reelflow.flows._shotlist_messages import fmt_num
from reelflow.flows.shotlist import Shot, ShotList, ShotRef
from reelflow.tasks._text import TextOverlaySpec
from reelflow.tasks._timeline import Slot, TimelineSpan, frame_problems, resolve

__all__ = ["check_extensions", "check_timeline", "frame_timeline", "last_transition_warning",
           "span_for", "spans_for", "without_skipped"]

#: The shot-list field a timeline problem is about, by problem kind.
_FIELDS = {"transition": "transition", "overlap": "transition", "text": "text"}


def span_for(shot: Shot) -> TimelineSpan:
    """What ``shot`` keeps on the timeline: its trim (or whole length), transition and text."""
    start = shot.trim[0] if shot.trim and not shot.is_card else 0.0
    return TimelineSpan(start_s=start, length_s=shot.length_s, transition=shot.transition.type,
                        transition_s=shot.transition.duration, label=shot.id,
                        overlays=_overlays(shot))


def spans_for(shotlist: ShotList) -> list[TimelineSpan]:
    """Every shot's span, in order."""
    return [span_for(shot) for shot in shotlist.shots]


def frame_timeline(shotlist: ShotList) -> list[Slot]:
    """The list in frames at its output rate; ``ShotListError`` when it does not fit."""
    problems = Problems(shotlist.source.name)
    check_timeline(list(shotlist.shots), shotlist.output.fps, set(), problems)
    if problems:
        raise ShotListError(problems.lines())
    return resolve(spans_for(shotlist), shotlist.output.fps, _namer(shotlist.shots))


def without_skipped(spans: Sequence[TimelineSpan], skipped: set[str],
                    fps: int) -> tuple[list[TimelineSpan], list[str]]:
    """The planned spans without the shots moderation refused (``on_moderation: skip``).

    The shots either side of a skipped one now meet: a transition that no longer fits
    (the new neighbour is too short, or it now overlaps that shot's own transition) becomes
    a cut rather than failing a render whose clips are paid for. Returns the spans and
    one line per transition changed.
    """
    kept = [span for span in spans if span.label not in skipped]
    notes = []
    while problems := [p for p in frame_problems(kept, fps) if p.kind in ("transition", "overlap")]:
        i = problems[0].index - (problems[0].kind == "overlap")   # an overlap: cut the way in
        span = kept[i]
        notes.append(f"{span.label}: transition: the {fmt_num(span.transition_s)}s "
                     f"{span.transition} into {kept[i + 1].label!r} does not fit once the refused "
                     "shots are skipped; it is a cut instead")
        kept[i] = span.model_copy(update={"transition": "cut", "transition_s": 0.0})
    return kept, notes


def check_timeline(shots: Sequence[Shot | None], fps: int, inherited: set[int],
                   problems: Problems) -> None:
    """Report each shot that does not fit in frames at ``fps`` (``None``: a shot with
    problems of its own; ``inherited``: numbers of shots whose transition is the default)."""
    spans = [None if shot is None else span_for(shot) for shot in shots]
    for problem in frame_problems(spans, fps, _namer(shots)):
        shot = shots[problem.index]
        assert shot is not None
        field = _FIELDS.get(problem.kind) or ("trim" if shot.trim else "duration")
        text = problem.message
        if field == "transition" and shot.index in inherited and problem.kind == "transition":
            text += "; the transition is from defaults"
        problems.shot(shot.index, shot.id, field, text)
    check_extensions(shots, fps, problems)


def check_extensions(shots: Sequence[Shot | None], fps: int, problems: Problems) -> None:
    """Refuse a cut that would jump inside an extension.

    Luma extends a generation from its last generated frame (``start: {shot: A}``) or
    back from its first (``end: {shot: A}``), whatever the list trims. Where the two
    shots sit side by side on the timeline, the cut between them is meant to be
    seamless: the frames on either side of it must be the ones the API joined, so the
    earlier shot must keep its clip's end and the later one its clip's start.
    """
    for before, after in zip(shots, shots[1:]):
        if before is None or after is None:
            continue
        if isinstance(after.start, ShotRef) and after.start.shot == before.id:
            _report_join(before, after, after, "start", fps, problems)
        if isinstance(before.end, ShotRef) and before.end.shot == after.id:
            _report_join(before, after, before, "end", fps, problems)


def _report_join(before: Shot, after: Shot, owner: Shot, field: str, fps: int,
                 problems: Problems) -> None:
    """The join ``before`` -> ``after`` that ``owner.field`` asks the API for."""
    joined = "continues from the last generated frame of" if field == "start" \
        else "ends on the first generated frame of"
    other = before if owner is after else after
    lost_end = round(before.duration_s * fps) - _kept_end(before, fps)
    lost_start = round(after.trim[0] * fps) if after.trim else 0
    if lost_end > 0:
        problems.shot(owner.index, owner.id, field,
                      f"this shot {joined} {other.id!r}, but {before.id!r} is trimmed "
                      f"to end at {fmt_num(before.trim[1])}s of its {fmt_num(before.duration_s)}s "
                      f"clip, so the cut into {after.id!r} would skip {fmt_num(lost_end / fps)}s: "
                      f"end the trim of {before.id!r} at {fmt_num(before.duration_s)} (Luma joins the clips there, "
                      "not at a trimmed frame)")
    if lost_start > 0:
        problems.shot(owner.index, owner.id, field,
                      f"this shot {joined} {other.id!r}, but {after.id!r} is trimmed "
                      f"to start at {fmt_num(after.trim[0])}s, so the cut from {before.id!r} would "
                      f"skip {fmt_num(lost_start / fps)}s: start the trim of {after.id!r} at 0 (Luma joins the "
                      "clips there, not at a trimmed frame)")


def _kept_end(shot: Shot, fps: int) -> int:
    """One past the last clip frame the shot keeps (the timeline's own rounding)."""
    if not shot.trim:
        return round(shot.duration_s * fps)
    return round(shot.trim[0] * fps) + round(shot.length_s * fps)


def last_transition_warning(shot: Shot, inherited: bool, warnings: Problems) -> None:
    """Note a transition set on the last shot itself: nothing follows it, so it is ignored.

    One inherited from ``defaults`` is not worth a word: defaults apply to every shot, and
    the last one simply has nothing to go into.
    """
    if shot.transition.is_cut or inherited:
        return
    warnings.shot(shot.index, shot.id, "transition",
                  f"warning: the {fmt_num(shot.transition.duration)}s {shot.transition.type} is "
                  "ignored: nothing follows the last shot")


def _overlays(shot: Shot) -> tuple[TextOverlaySpec, ...]:
    text = shot.text
    if not text:
        return ()
    return (TextOverlaySpec(content=text.content, position=text.position, size=text.size,
                            colour=text.colour, start_s=text.start, end_s=text.end),)


def _namer(shots: Sequence[Shot | None]):
    def name(i: int) -> str:
        shot = shots[i]
        return f"item {i + 1}" if shot is None else f"shot {shot.index} ({shot.id})"
    return name
