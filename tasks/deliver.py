"""Deliverables beside the rendered MP4: poster, contact sheet, sequence.otio, mezzanine.

The plain functions (:func:`make_poster`, :func:`make_contact_sheet`, :func:`write_otio`,
:func:`export_mezzanine`) work without Prefect; the tasks are thin wrappers over them.
Every file is written atomically, and every ffmpeg call goes through ``_run_ffmpeg``.
The tasks use ``NO_CACHE``: they are cheap next to the render and write files, not results.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from reelflow.tasks._deliver_media import (
    MEZZANINE_CODECS,
    POSTER_POSITION,
    SheetEntry,
    edit_sheet_entries,
    export_mezzanine,
    frame_key,
    frame_time,
    make_contact_sheet,
    make_poster,
)
from reelflow.tasks._deliver_otio import build_timeline, split_transition, write_otio
from reelflow.tasks._ffmpeg import OutputFormat
from reelflow.tasks._pieces import TimelineItem

__all__ = [
    "MEZZANINE_CODECS",
    "POSTER_POSITION",
    "SheetEntry",
    "build_timeline",
    "contact_sheet_task",
    "edit_sheet_entries",
    "export_mezzanine",
    "frame_key",
    "frame_time",
    "make_contact_sheet",
    "make_poster",
    "mezzanine_task",
    "otio_task",
    "poster_task",
    "split_transition",
    "write_otio",
]


@task(cache_policy=NO_CACHE)
def poster_task(video: Path, out: Path, *, at_s: float | None = None) -> Path:
    """Write one full-size JPEG frame of the video (default: a third of the way in).

    Args:
        video: the rendered video.
        out: the JPEG to write.
        at_s: time of the frame in seconds; ``None`` for ``POSTER_POSITION`` of the length.

    Returns:
        Path of the JPEG.

    Raises:
        ValueError: ``at_s`` is outside the video.

    Example:
        ```python
        from prefect import flow
        from reelflow.tasks.deliver import poster_task

        @flow
        def poster():
            return poster_task("renders/teaser.mp4", "renders/teaser.jpg")
        ```
    """
    get_run_logger().info("Poster of %s -> %s", video, out)
    return make_poster(Path(video), Path(out), at_s=at_s)


@task(cache_policy=NO_CACHE)
def contact_sheet_task(entries: list[SheetEntry], out: Path, *, columns: int = 4,
                       thumb_width: int = 384) -> Path:
    """Write a PNG grid of one captioned frame per shot.

    Args:
        entries: label, video and time of each cell, in reading order.
        out: the PNG to write.
        columns: cells per row (fewer when there are fewer entries).
        thumb_width: width of each cell in pixels.

    Returns:
        Path of the PNG.

    Raises:
        ValueError: no entries, or a time outside its video.

    Example:
        ```python
        from prefect import flow
        from reelflow.tasks.deliver import SheetEntry, contact_sheet_task

        @flow
        def sheet():
            cells = [SheetEntry(label="opening", video="renders/teaser.mp4", at_s=1.5)]
            return contact_sheet_task(cells, "renders/sheet.png")
        ```
    """
    get_run_logger().info("Contact sheet of %d shots -> %s", len(entries), out)
    return make_contact_sheet(entries, Path(out), columns=columns, thumb_width=thumb_width)


@task(cache_policy=NO_CACHE)
def otio_task(items: list[TimelineItem], fmt: OutputFormat, out: Path, *, name: str,
              metadata: list[dict] | None = None) -> Path:
    """Write the sequence as an OpenTimelineIO JSON timeline as long as the MP4.

    Args:
        items: the shots in order, as given to the assembler.
        fmt: the delivery format (times are frames at ``fmt.fps``).
        out: the ``.otio`` file to write.
        name: the timeline name.
        metadata: one dictionary per item merged into ``clip.metadata["reelflow"]``.

    Returns:
        Path of the ``.otio`` file.

    Raises:
        ValueError: a transition does not fit, or ``metadata`` has the wrong length.

    Example:
        ```python
        from prefect import flow
        from reelflow.tasks.deliver import otio_task
        from reelflow.tasks.media import OutputFormat

        @flow
        def timeline(items):
            fmt = OutputFormat(width=1920, height=1080, fps=24)
            return otio_task(items, fmt, "renders/sequence.otio", name="teaser")
        ```
    """
    get_run_logger().info("OTIO timeline %r of %d items -> %s", name, len(items), out)
    return write_otio(items, fmt, Path(out), name=name, metadata=metadata)


@task(cache_policy=NO_CACHE)
def mezzanine_task(video: Path, out: Path, *, codec: str = "prores") -> Path:
    """Re-encode the video as ProRes 422 HQ or DNxHR HQ with PCM audio for editors.

    Args:
        video: the rendered video.
        out: the ``.mov`` to write.
        codec: ``prores`` or ``dnxhr``.

    Returns:
        Path of the mezzanine file (same frame count as ``video``).

    Raises:
        ValueError: an unknown codec.

    Example:
        ```python
        from prefect import flow
        from reelflow.tasks.deliver import mezzanine_task

        @flow
        def mezzanine():
            return mezzanine_task("renders/teaser.mp4", "renders/teaser.mov", codec="dnxhr")
        ```
    """
    get_run_logger().info("Mezzanine (%s) of %s -> %s", codec, video, out)
    return export_mezzanine(Path(video), Path(out), codec=codec)
