"""Files delivered beside the video: poster, contact sheet, sequence.otio, optional mezzanine,
and the EXR exports of ray-3.2 shots with `exr` (copied from the clip store).

Each is made once per distinct input (the output's hash plus what it shows) in the
media cache and copied beside the output, so an unchanged rerun encodes nothing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from reelflow.tasks.deliver import (SheetEntry, edit_sheet_entries, export_mezzanine,
                                    frame_key, frame_time, make_contact_sheet, make_poster,
                                    write_otio)
from reelflow.tasks._ffmpeg import cached_or_made
from reelflow.tasks._verify import FileRecord, read_record, write_record
from reelflow.tasks.media import OutputFormat, TimelineItem, default_media_cache
from reelflow.tasks.models import canonical_hash
from reelflow.tasks.store import atomic_write_path, sha256_file

__all__ = ["Deliverables", "deliver_extras"]


class Deliverables(BaseModel):
    """Paths of the files written beside the video."""

    poster: Path
    contact_sheet: Path
    otio: Path
    mezzanine: Path | None = None
    #: ray-3.2 shots with ``exr``: their EXR exports, ``<stem>.exr/<shot id>.exr.zip``.
    exr: list[Path] = []


def _cached(key_inputs: dict, suffix: str, make) -> Path:
    """The cached file for these inputs (checked), made by ``make(path)`` when missing or bad."""
    cache = default_media_cache()
    return cached_or_made(cache / "deliver" / f"{canonical_hash(key_inputs)[:24]}{suffix}", cache,
                          make)


def _place(cached: Path, target: Path) -> Path:
    """Copy ``cached`` to ``target`` atomically unless it is already there, byte for byte.

    The copy gets the cache entry's recorded mtime, so a later run knows it unchanged from
    size and mtime alone (as the cache does); a target that differs in either is hashed.
    """
    record = read_record(cached) or write_record(cached)  # just checked: its hash is known
    if target.is_file() and _same(target.stat(), record, target):
        return target
    tmp = atomic_write_path(target)
    shutil.copyfile(cached, tmp)
    os.utime(tmp, ns=(record.mtime_ns, record.mtime_ns))
    os.replace(tmp, target)
    return target


def _same(stat: os.stat_result, record: FileRecord, target: Path) -> bool:
    return stat.st_size == record.size and (stat.st_mtime_ns == record.mtime_ns
                                            or sha256_file(target) == record.sha256)


@task(cache_policy=NO_CACHE)
def deliver_extras(video: Path, items: list[TimelineItem], fmt: OutputFormat, *, name: str,
                   metadata: list[dict], mezzanine: str | None = None,
                   video_sha256: str | None = None,
                   stills: list[tuple[str, Path]] = (),
                   pieces: list[tuple[str, int]] | None = None,
                   exr: list[tuple[str, Path]] = ()) -> Deliverables:
    """Write poster, contact sheet and OTIO timeline (and a mezzanine if asked) beside ``video``.

    ``video_sha256`` is the video's hash when the caller knows it (the assembly's checked
    cache record); without it the video is hashed. ``stills`` (label, stored PNG): the
    generated stills shots start from, as cells after the edit's on the contact sheet.
    ``pieces`` (the assembly's, in output order) key the poster and each contact-sheet
    cell by the frame they show, so a rebuild draws only the cells whose frame changed
    and puts the sheet together from kept tiles; without them both are keyed by the video.
    ``exr`` (shot id, stored EXR export): copied beside the video as
    ``<stem>.exr/<shot id>.exr.zip``.

    Example:
        ```python
        extras = deliver_extras(Path("renders/teaser.mp4"), items, fmt, name="teaser", metadata=meta)
        ```
    """
    get_run_logger().info("Writing deliverables for %s", video.name)
    video_sha = video_sha256 or (None if pieces else sha256_file(video))
    stem = video.with_suffix("")
    entries = edit_sheet_entries(video, items, fmt.fps, pieces)  # frames of the edit as delivered
    entries += [SheetEntry(label=f"still {label}", video=path, at_s=0,
                           key=f"still:{Path(path).name}" if pieces else None)  # by its hash
                for label, path in stills]
    if pieces:
        frame = sum(frames for _, frames in pieces) // 3  # a third of the way in
        poster = _cached({"poster": frame_key(pieces, frame), "fmt": fmt.key()}, ".jpg",
                         lambda p: make_poster(video, p, at_s=frame_time(frame, fmt.fps)))
        sheet = _cached({"sheet": [(e.key, e.label) for e in entries], "fmt": fmt.key()}, ".png",
                        lambda p: make_contact_sheet(entries, p,
                                                     tiles=default_media_cache() / "tiles"))
    else:
        poster = _cached({"poster": video_sha}, ".jpg", lambda p: make_poster(video, p))
        sheet = _cached({"sheet": video_sha, "cells": [(e.label, e.at_s) for e in entries],
                         **({"stills": [str(path) for _, path in stills]} if stills else {})},
                        ".png", lambda p: make_contact_sheet(entries, p))
    otio_file = _cached({"otio": [i.model_dump(mode="json") for i in items], "fmt": fmt.key(),
                         "name": name, "meta": metadata}, ".otio",
                        lambda p: write_otio(items, fmt, p, name=name, metadata=metadata))
    result = Deliverables(poster=_place(poster, Path(f"{stem}.poster.jpg")),
                          contact_sheet=_place(sheet, Path(f"{stem}.contact.png")),
                          otio=_place(otio_file, Path(f"{stem}.otio")))
    if mezzanine:
        mov = _cached({"mezzanine": mezzanine, "video": video_sha or sha256_file(video)}, ".mov",
                      lambda p: export_mezzanine(video, p, codec=mezzanine))
        result.mezzanine = _place(mov, Path(f"{stem}.{mezzanine}.mov"))
    for shot_id, stored in exr:
        target = Path(f"{stem}.exr") / f"{shot_id}.exr.zip"
        target.parent.mkdir(parents=True, exist_ok=True)
        result.exr.append(_place(stored, target))
    return result
