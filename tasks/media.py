"""Media tasks: probe, conform, title cards and the smart-render assembly, with ffmpeg.

The tasks are thin wrappers over plain functions that flows may also call without
Prefect (:func:`probe`, :func:`conform`, :func:`render_title_card`, :func:`assemble`).
Every ffmpeg call goes through one private ``_run_ffmpeg`` (``reelflow.tasks._ffmpeg``),
which logs the command at DEBUG and raises ``FfmpegError`` with the argv and stderr tail.

The tasks use ``NO_CACHE``: every output is already content-addressed on disk under
``cache_dir``, so a rerun finds it without Prefect's result cache. Name runs after the
shot with ``.with_options(task_run_name="conform-opening")``.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from reelflow import _progress, defaults as builtin
from reelflow.config import reelflow_home

from reelflow.tasks._assemble import AssemblyResult, assemble
from reelflow.tasks._audio import AudioMix
from reelflow.tasks._ffmpeg import OutputFormat, cached_file
from reelflow.tasks._pieces import TimelineItem
from reelflow.tasks._probe import ClipInfo, probe
from reelflow.tasks._encode import (conform, conform_path, render_title_card, title_card_cached,
                                    title_card_path)
from reelflow.tasks._text import TextOverlaySpec

__all__ = [
    "AssemblyResult",
    "AudioMix",
    "ClipInfo",
    "OutputFormat",
    "TextOverlaySpec",
    "TimelineItem",
    "assemble",
    "assemble_sequence",
    "card_if_cached",
    "conform",
    "conformed_if_cached",
    "conform_clip",
    "default_media_cache",
    "make_title_card",
    "probe",
    "probe_clip",
    "render_title_card",
]


def default_media_cache() -> Path:
    """Where derived media lives by default: REELFLOW_HOME/cache/media."""
    return reelflow_home() / "cache" / "media"


def conformed_if_cached(source_sha256: str, fmt: OutputFormat,
                        cache_dir: Path | None = None) -> Path | None:
    """The conformed clip :func:`conform_clip` would return, if it is in the cache (checked)."""
    path = conform_path(source_sha256, fmt, Path(cache_dir or default_media_cache()))
    return path if cached_file(path) else None


def card_if_cached(text: str, *, background: str = "#000000", duration_s: float,
                   fmt: OutputFormat, cache_dir: Path | None = None) -> Path | None:
    """The card :func:`make_title_card` would return, if it is in the cache (checked)."""
    path = title_card_path(text, background=background, duration_s=duration_s, fmt=fmt,
                           cache_dir=Path(cache_dir or default_media_cache()))
    return path if cached_file(path) else None


@task(cache_policy=NO_CACHE)
def probe_clip(path: Path) -> ClipInfo:
    """Probe a clip with PyAV, counting its decoded video frames exactly.

    Args:
        path: the media file.

    Returns:
        ClipInfo: size, fps, frames, duration, codecs, and whether it has audio.

    Raises:
        ValueError: the file has no video stream.

    Example:
        ```python
        from prefect import flow
        from reelflow.tasks.media import probe_clip

        @flow
        def check(path: str) -> int:
            return probe_clip(path).frames
        ```
    """
    get_run_logger().info("Probing %s", path)
    return probe(path)


@task(cache_policy=NO_CACHE)
def conform_clip(source: Path, source_sha256: str, fmt: OutputFormat,
                 cache_dir: Path | None = None, shot_id: str | None = None) -> Path:
    """Conform a whole clip to the output format once (cover-crop, fps, closed GOPs).

    Args:
        source: the clip as generated or downloaded.
        source_sha256: its content hash, the cache key together with ``fmt.key()``.
        fmt: the delivery format.
        cache_dir: where conformed clips are kept; REELFLOW_HOME/cache/media when omitted.
        shot_id: the shot it belongs to, named in the log and in progress states.

    Returns:
        Path of the conformed, video-only H.264 clip; a second call does no encoding.

    Raises:
        FfmpegError: ffmpeg could not read or encode the clip.

    Example:
        ```python
        from prefect import flow
        from reelflow.tasks.media import OutputFormat, conform_clip

        @flow
        def prepare(path: str, sha: str):
            fmt = OutputFormat(width=1920, height=1080, fps=24)
            return conform_clip.with_options(task_run_name="conform-opening")(
                path, sha, fmt, "cache")
        ```
    """
    cache_dir = Path(cache_dir or default_media_cache())
    if not cached_file(conform_path(source_sha256, fmt, cache_dir)):  # else: nothing to encode
        get_run_logger().info("Conforming %s to %dx%d@%d", f"shot {shot_id}" if shot_id else source,
                              fmt.width, fmt.height, fmt.fps)
        if shot_id:
            _progress.shot_state(shot_id, "conforming")
    out = conform(source, source_sha256, fmt, cache_dir)
    if shot_id:
        _progress.shot_state(shot_id, "done")
    return out


@task(cache_policy=NO_CACHE)
def make_title_card(text: str, *, background: str = builtin.CARD_BACKGROUND, duration_s: float,
                    fmt: OutputFormat, cache_dir: Path | None = None, shot_id: str | None = None) -> Path:
    """Render a title card: ``text`` centred on a plain background, taken literally.

    Args:
        text: the title; any Unicode, with quotes, colons, ``%``, braces as they are.
        background: ``#rrggbb`` or an ffmpeg colour name.
        duration_s: card length; it holds ``round(duration_s * fmt.fps)`` frames.
        fmt: the delivery format.
        cache_dir: where cards are kept (cached by text, colour, duration, format);
            REELFLOW_HOME/cache/media when omitted.
        shot_id: the card's shot, told ``done`` in progress states once it is drawn.

    Returns:
        Path of a video-only H.264 clip at the output size and rate.

    Raises:
        ValueError: bad colour, or a card shorter than one frame.

    Example:
        ```python
        from prefect import flow
        from reelflow.tasks.media import OutputFormat, make_title_card

        @flow
        def card():
            fmt = OutputFormat(width=1280, height=720, fps=24)
            return make_title_card("Coming 2027", duration_s=3, fmt=fmt, cache_dir="cache")
        ```
    """
    out, drawn = title_card_cached(text, background=background, duration_s=duration_s, fmt=fmt,
                                   cache_dir=Path(cache_dir or default_media_cache()))
    if drawn:
        get_run_logger().info("Rendered title card %r", text[:60])
    if shot_id:
        _progress.shot_state(shot_id, "done")
    return out


@task(cache_policy=NO_CACHE)
def assemble_sequence(items: list[TimelineItem], fmt: OutputFormat, out_path: Path,
                      cache_dir: Path | None = None, jobs: int | None = None,
                      mix: AudioMix | None = None) -> AssemblyResult:
    """Assemble timeline items into one MP4, re-encoding only seams and trim edges.

    The audio is one track: each clip's own audio (silence where it has none), then,
    with ``mix``, a music bed (looped/trimmed, faded in and out) ducked under the clip
    audio and the whole normalised to ``mix.loudness`` LUFS with two-pass loudnorm.

    Args:
        items: the shots in order; each item's ``transition`` leads into the next.
        fmt: the delivery format.
        out_path: the MP4 to write (atomically).
        cache_dir: the cache of conformed clips, pieces and finished files;
            REELFLOW_HOME/cache/media when omitted.
        jobs: encodes to run at once (default: up to 4, by CPU count).
        mix: music, music_volume (linear), duck and loudness (LUFS, None: as mixed);
            None keeps the clips' audio untouched. A changed mix re-renders only the
            audio and the final mux: the video pieces stay cached.

    Returns:
        AssemblyResult: the path, frame count, duration and how many pieces were
        encoded vs reused (a rerun with nothing changed encodes none).

    Raises:
        ValueError: a transition does not fit its neighbours, a trim runs past a clip,
            or the music file is missing or has no audio.
        FfmpegError: an ffmpeg command failed.

    Example:
        ```python
        from prefect import flow
        from reelflow.tasks.media import AudioMix, OutputFormat, TimelineItem, assemble_sequence

        @flow
        def edit(items: list[TimelineItem]):
            fmt = OutputFormat(width=1920, height=1080, fps=24)
            mix = AudioMix(music="assets/bed.mp3", music_volume=0.5, duck=True, loudness=-14)
            return assemble_sequence(items, fmt, "renders/teaser.mp4", "cache", mix=mix)
        ```
    """
    get_run_logger().info("Assembling %d items into %s", len(items), out_path)
    return assemble(items, fmt, out_path, cache_dir or default_media_cache(), jobs=jobs,
                    mix=mix)
