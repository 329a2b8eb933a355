"""The OpenTimelineIO timeline of a rendered sequence (``sequence.otio``).

Frames come from the same :func:`reelflow.tasks._pieces.slots_for` the assembler uses, so
the OTIO track is exactly as long as the MP4: ``sum(frames) - sum(transition frames)``.

How a transition of ``T`` frames between clips A and B is written. In the MP4, A's last
``T`` kept frames overlap B's first ``T``. OTIO puts a cut point inside that overlap: the
Transition's ``in_offset`` is the part before the cut (B's media is read from before
B's ``source_range`` start) and its ``out_offset`` the part after it (A's media is read
past A's ``source_range`` end; see ``Track.handles_of_child``). We use
``in_offset = T // 2`` and ``out_offset = T - T // 2`` (whole frames: for an odd ``T``
the extra frame goes after the cut), shorten A's ``source_range`` at its tail by
``out_offset`` and B's at its head by ``in_offset``. The track then loses exactly ``T``
frames per transition, as the MP4 does, and the handles the transition reads are frames
the clip really holds.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import opentimelineio as otio

from reelflow.tasks._ffmpeg import OutputFormat, atomic_output
from reelflow.tasks._pieces import Slot, TimelineItem, slots_for
from reelflow.tasks._probe import probe

__all__ = ["build_timeline", "split_transition", "write_otio"]

logger = logging.getLogger("reelflow.tasks.deliver")

#: Key under which reelflow's own data sits in every OTIO metadata dictionary.
NAMESPACE = "reelflow"


def split_transition(frames: int) -> tuple[int, int]:
    """Return ``(in_offset, out_offset)`` in whole frames that sum to ``frames``."""
    head = frames // 2
    return head, frames - head


def write_otio(items: list[TimelineItem], fmt: OutputFormat, out: Path, *, name: str,
               metadata: list[dict] | None = None) -> Path:
    """Write the timeline of ``items`` as an OTIO JSON file (atomically).

    Args:
        items: the shots in order, as given to the assembler.
        fmt: the delivery format; every time is in frames at ``fmt.fps``.
        out: the ``.otio`` file to write.
        name: the timeline's name.
        metadata: optional per-item dictionaries (JSON-able), merged into each clip's
            ``metadata["reelflow"]`` (e.g. generation_id, cost).

    Returns:
        ``out``.

    Raises:
        ValueError: a transition does not fit, or ``metadata`` has the wrong length.
    """
    timeline = build_timeline(items, fmt, name=name, metadata=metadata)
    out = Path(out)
    with atomic_output(out) as tmp:
        otio.adapters.write_to_file(timeline, str(tmp), adapter_name="otio_json")
    logger.info("wrote OTIO timeline %r (%d frames) -> %s", name,
                timeline.duration().to_frames(), out)
    return out


def build_timeline(items: list[TimelineItem], fmt: OutputFormat, *, name: str,
                   metadata: list[dict] | None = None) -> otio.schema.Timeline:
    """Build the in-memory OTIO timeline :func:`write_otio` writes (same arguments)."""
    if metadata is not None and len(metadata) != len(items):
        raise ValueError(f"metadata has {len(metadata)} entries for {len(items)} items: "
                         "give one dictionary per item")
    fps = fmt.fps
    slots = slots_for(items, fps)
    timeline = otio.schema.Timeline(name=name, global_start_time=_rt(0, fps))
    timeline.metadata[NAMESPACE] = {"width": fmt.width, "height": fmt.height, "fps": fps}
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    for i, (item, slot) in enumerate(zip(items, slots)):
        extra = metadata[i] if metadata is not None else {}
        track.append(_clip(item, slot, fps, extra))
        if slot.t_out:
            track.append(_transition(item, slot.t_out, fps))
    expected = sum(s.frames for s in slots) - sum(s.t_out for s in slots)
    assert track.duration().to_frames() == expected, "OTIO track length differs from the MP4"
    return timeline


def _clip(item: TimelineItem, slot: Slot, fps: int, extra: dict) -> otio.schema.Clip:
    head = split_transition(slot.t_in)[0]
    tail = split_transition(slot.t_out)[1]
    used = otio.opentime.TimeRange(_rt(slot.start + head, fps),
                                   _rt(slot.frames - head - tail, fps))
    reference = otio.schema.ExternalReference(
        target_url=Path(item.source).resolve().as_uri(),
        available_range=otio.opentime.TimeRange(_rt(0, fps),
                                                _rt(_available_frames(item, slot, fps), fps)),
    )
    clip = otio.schema.Clip(name=item.label or Path(item.source).name,
                            media_reference=reference, source_range=used)
    clip.metadata[NAMESPACE] = {
        "shot_id": item.label,
        "sha256": item.source_sha256,
        "start_frame": slot.start,
        "frames": slot.frames,
        **_jsonable(extra),
    }
    return clip


def _transition(item: TimelineItem, frames: int, fps: int) -> otio.schema.Transition:
    head, tail = split_transition(frames)
    kind = (otio.schema.TransitionTypes.SMPTE_Dissolve if item.transition == "crossfade"
            else otio.schema.TransitionTypes.Custom)
    transition = otio.schema.Transition(name=item.transition, transition_type=kind,
                                        in_offset=_rt(head, fps), out_offset=_rt(tail, fps))
    transition.metadata[NAMESPACE] = {"transition": item.transition,
                                      "xfade": item.xfade_name, "frames": frames}
    return transition


def _available_frames(item: TimelineItem, slot: Slot, fps: int) -> int:
    """The whole source in frames at ``fps`` (at least the frames the item uses).

    The conform retimes by time, so the source holds about ``duration * fps`` output
    frames; ``max`` with the used end absorbs the one-frame rounding of the retime. A
    source that is not on disk (e.g. moved away already) falls back to the used end.
    """
    needed = slot.end
    source = Path(item.source)
    if not source.is_file():
        logger.warning("%s: %s is not on disk; available_range = the frames used",
                       slot.name, source)
        return needed
    info = probe(source, decode=False)
    return max(needed, round(info.duration_s * fps))


def _jsonable(value: dict) -> dict[str, Any]:
    """Copy ``value`` into plain JSON types (OTIO metadata takes nothing else)."""
    return json.loads(json.dumps(value, default=str))


def _rt(frames: int, fps: int) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(frames, fps)
