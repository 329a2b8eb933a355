"""The video encodes: conformed clips, title cards, stream-copied spans and re-encoded seams.

Each function writes one content-addressed file under ``cache_dir`` and returns
``(path, encoded)``, where ``encoded`` says whether x264 ran (False: cache hit or copy).
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import ffmpeg

from reelflow import defaults as builtin
from reelflow._binaries import font_file
from reelflow.errors import ReelflowError

from reelflow.tasks._ffmpeg import (
    RECIPE_VERSION,
    OutputFormat,
    bitexact_args,
    cache_output,
    cached_file,
    content_key,
    encode_slot,
    run_stream,
    x264_output_args,
)
from reelflow.tasks._probe import ClipInfo, count_video_packets, probe
from reelflow.tasks._scratch import run_dir, sweep_once
from reelflow.tasks._text import TEXT_RECIPE, OverlayWindow, draw_overlays, draw_text, ffmpeg_colour
from reelflow.tasks._verify import read_record, record_path, sha256_file, write_record

__all__ = ["Join", "Run", "chain", "conform", "conform_cached", "conform_filters", "conformed_info",
           "encode_piece", "extract_span", "fan_out", "frame_range", "render_title_card",
           "title_card_cached", "title_card_path"]

logger = logging.getLogger("reelflow.tasks.media")

_HEX = re.compile(r"^[0-9a-fA-F]{16,}$")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def conform_path(source_sha256: str, fmt: OutputFormat, cache_dir: Path) -> Path:
    """Where the conformed copy of a source lives: keyed by its sha256 and the format."""
    # A real sha256 names the file; anything else (e.g. "card:...") is hashed to a safe name.
    name = source_sha256 if _HEX.match(source_sha256) else content_key(source_sha256)
    return Path(cache_dir, "conform", f"{name[:32]}-{fmt.key()}.mp4")


def conform(source: str | Path, source_sha256: str, fmt: OutputFormat,
            cache_dir: str | Path) -> Path:
    """Encode the whole of ``source`` to ``fmt`` once; return the cached conformed clip.

    The clip is scaled to cover the frame and centre-cropped, retimed to ``fmt.fps``,
    yuv420p, video only, with closed GOPs of ``fmt.gop`` frames so it can be cut by
    stream copy at any GOP boundary. Cached by (``source_sha256``, ``fmt.key()``).
    """
    return conform_cached(Path(source), source_sha256, fmt, Path(cache_dir))[0]


def conform_cached(source: Path, source_sha256: str, fmt: OutputFormat,
                   cache_dir: Path) -> tuple[Path, bool]:
    """:func:`conform`, also saying whether it encoded (False: found in the cache)."""
    sweep_once(cache_dir)
    if _drawn_for(Path(source), fmt):  # a title card is drawn in the output format
        return Path(source), False
    out = conform_path(source_sha256, fmt, cache_dir)
    if cached_file(out):
        return out, False
    _check_source(source, source_sha256)
    video = conform_filters(ffmpeg.input(str(source)).video, fmt)
    with encode_slot(fmt), cache_output(  # bounded memory: x264 at 1080p holds ~300 MB
            out, cache_dir, info=lambda tmp: probe(tmp, decode=False).model_dump()) as tmp:
        run_stream(ffmpeg.output(video, str(tmp), **x264_output_args(fmt)))
    logger.info("conformed %s -> %s", source, out.name)
    return out, True


def _check_source(source: Path, sha256: str) -> None:
    """Bytes about to be conformed must be the ones their hash names (a hash costs far less
    than the decode): this catches a stored clip that rotted with its size and mtime intact.

    Raises:
        ReelflowError: they are not; the clip's checksum record is dropped, so the store
            hashes it in full next time, discards it and fetches it again.
    """
    if _SHA256.fullmatch(sha256) and sha256_file(source) != sha256:
        record_path(source).unlink(missing_ok=True)
        raise ReelflowError(f"{source} no longer matches its SHA-256 (changed on disk); nothing "
                            "was made from it: run again to fetch it again from its generation")


def conform_filters(video, fmt: OutputFormat):
    """The conform chain: retime to fmt.fps, fill the frame as ``fmt.fit`` says, yuv420p.

    cover scales up until both sides cover the frame and centre-crops; contain scales
    down to fit and pads with black; blur puts the contained clip over a blurred,
    covering copy of itself.
    """
    video = video.filter("setpts", "PTS-STARTPTS").filter("fps", fps=fmt.fps)
    if fmt.fit == "cover":
        video = _cover(video, fmt)
    elif fmt.fit == "contain":
        video = _contain(video, fmt).filter("pad", fmt.width, fmt.height, "(ow-iw)/2",
                                            "(oh-ih)/2", color="black")
    else:
        back, front = fan_out(video, 2)
        radius = max(2, fmt.height // 30)
        back = _cover(back, fmt).filter("boxblur", luma_radius=radius, luma_power=2)
        video = ffmpeg.overlay(back, _contain(front, fmt), x="(W-w)/2", y="(H-h)/2")
    return video.filter("setsar", 1).filter("format", "yuv420p")


def _cover(video, fmt: OutputFormat):
    return (video.filter("scale", w=fmt.width, h=fmt.height,
                         force_original_aspect_ratio="increase")
            .filter("crop", fmt.width, fmt.height))


def _contain(video, fmt: OutputFormat):
    return video.filter("scale", w=fmt.width, h=fmt.height, force_divisible_by=2,
                        force_original_aspect_ratio="decrease")


def _drawn_for(source: Path, fmt: OutputFormat) -> bool:
    """True for a kept title card drawn for ``fmt`` (its record says so): it has the
    conform's size, rate, pixel format and closed GOPs already, so it is used as it is."""
    record = read_record(source)
    return bool(record is not None and record.info and record.info.get("drawn_for") == fmt.key()
                and cached_file(source))


def conformed_info(path: Path) -> ClipInfo:
    """Return a conformed clip's ClipInfo from its checksum record (probing once if it lacks it)."""
    record = read_record(path)
    if record is not None and record.info is not None:
        return ClipInfo.model_validate(record.info)
    info = probe(path, decode=False)
    write_record(path, info=info.model_dump())
    return info


def render_title_card(text: str, *, background: str = builtin.CARD_BACKGROUND, duration_s: float,
                      fmt: OutputFormat, cache_dir: str | Path) -> Path:
    """Render ``text`` centred on a plain background as an H.264 clip in ``fmt`` (no audio).

    The text goes to drawtext through a file with ``expansion=none``, so quotes,
    colons, backslashes, ``%`` and braces all appear literally. The clip holds
    ``round(duration_s * fmt.fps)`` frames and is cached by (text, background,
    duration, format).

    Raises:
        ValueError: the background is not a colour, or the card is shorter than a frame.
    """
    return title_card_cached(text, background=background, duration_s=duration_s, fmt=fmt,
                             cache_dir=Path(cache_dir))[0]


def title_card_path(text: str, *, background: str, duration_s: float, fmt: OutputFormat,
                    cache_dir: Path) -> Path:
    """Where the card for these inputs is kept (cached by text, colour, frames, format)."""
    frames = round(duration_s * fmt.fps)
    if frames < 1:
        raise ValueError(f"title card duration {duration_s}s is shorter than one frame")
    key = content_key({"card": text, "bg": ffmpeg_colour(background), "frames": frames,
                       "fmt": fmt.key(), "font": Path(font_file()).name,
                       "recipe": RECIPE_VERSION, "text": TEXT_RECIPE})
    return Path(cache_dir, "cards", f"{key}.mp4")


def title_card_cached(text: str, *, background: str, duration_s: float, fmt: OutputFormat,
                      cache_dir: Path) -> tuple[Path, bool]:
    """:func:`render_title_card`, also saying whether it encoded."""
    colour = ffmpeg_colour(background)
    frames = round(duration_s * fmt.fps)
    out = title_card_path(text, background=background, duration_s=duration_s, fmt=fmt,
                          cache_dir=cache_dir)
    sweep_once(cache_dir)
    if cached_file(out):
        return out, False
    video = ffmpeg.input(f"color=c={colour}:s={fmt.width}x{fmt.height}:r={fmt.fps}",
                         f="lavfi").video
    with tempfile.TemporaryDirectory(dir=run_dir(cache_dir)) as tmpdir:
        video = draw_text(video, text, fmt, Path(tmpdir)).filter("format", "yuv420p")
        with cache_output(out, cache_dir, info=lambda tmp: {
                **probe(tmp, decode=False).model_dump(), "drawn_for": fmt.key()}) as tmp:
            with encode_slot(fmt):
                run_stream(ffmpeg.output(video, str(tmp), **{"frames:v": frames},
                                         **x264_output_args(fmt)))
    logger.info("rendered title card %r -> %s", text[:40], out.name)
    return out, True


class Run:
    """Frames ``[start, end)`` of one conformed clip (a slice of the timeline to encode).

    ``overlays`` are text overlays drawn on the run's own frames (windows counted from
    the run's first frame), before any transition mixes it with its neighbour.
    """

    __slots__ = ("clip", "sha256", "start", "end", "overlays")

    def __init__(self, clip: Path, sha256: str, start: int, end: int,
                 overlays: tuple[OverlayWindow, ...] = ()):
        self.clip, self.sha256, self.start, self.end = clip, sha256, start, end
        self.overlays = tuple(overlays)

    @property
    def frames(self) -> int:
        """How many frames the run holds."""
        return self.end - self.start

    def __repr__(self) -> str:
        text = f", {len(self.overlays)} overlays" if self.overlays else ""
        return f"Run({self.sha256[:8]}, {self.start}, {self.end}{text})"


class Join:
    """How one run goes into the next: a cut (0 frames) or an xfade transition of ``frames``."""

    __slots__ = ("transition", "frames")

    def __init__(self, transition: str, frames: int):
        self.transition, self.frames = transition, frames

    def __repr__(self) -> str:
        return f"Join({self.transition}, {self.frames})"


def extract_span(clip: Path, start: int, end: int, total: int, fmt: OutputFormat,
                 cache_dir: Path, key: str) -> tuple[Path, bool]:
    """Cut GOP-aligned frames ``[start, end)`` out of a conformed clip by stream copy.

    The segment muxer splits only at key frames and counts packets, so with closed
    GOPs starting at ``start`` and ``end`` (or the clip's end) the cut is exact. A span
    that is the whole clip is the conformed file itself: nothing to cut.
    """
    if start == 0 and end == total:
        return clip, False
    out = Path(cache_dir, "pieces", f"{key}.mp4")
    if cached_file(out):
        return out, False
    with tempfile.TemporaryDirectory(dir=run_dir(cache_dir)) as tmpdir:
        kwargs = {"map": "0:v", "c": "copy", "frames:v": end, "video_track_timescale":
                  fmt.timescale, **bitexact_args()}
        if start > 0:
            kwargs |= {"f": "segment", "segment_frames": start, "reset_timestamps": 1,
                       "segment_format": "mp4", "segment_format_options":
                       f"video_track_timescale={fmt.timescale}"}
            target, produced = Path(tmpdir, "seg%d.mp4"), Path(tmpdir, "seg1.mp4")
        else:
            target = produced = Path(tmpdir, "seg.mp4")
        run_stream(ffmpeg.input(str(clip)).output(str(target), **kwargs))
        _check_frames(produced, end - start, f"span {start}..{end} of {clip.name}")
        with cache_output(out, cache_dir) as tmp:
            produced.replace(tmp)
    return out, False


def encode_piece(runs: Sequence[Run], joins: Sequence[Join], fmt: OutputFormat,
                 cache_dir: Path, key: str) -> tuple[Path, bool]:
    """Re-encode a seam: runs of conformed clips joined by cuts or xfade transitions.

    Each run's text overlays are drawn on its frames before the runs are joined, so
    text fades with its shot through a transition.
    """
    out = Path(cache_dir, "pieces", f"{key}.mp4")
    if cached_file(out):
        return out, False
    with tempfile.TemporaryDirectory(dir=run_dir(cache_dir)) as tmpdir:  # overlay text files
        streams = [draw_overlays(stream, run.overlays, run.frames, fmt, Path(tmpdir))
                   for stream, run in zip(_run_streams(runs, fmt), runs)]
        video, frames = chain(streams, [r.frames for r in runs], joins, fmt)
        with cache_output(out, cache_dir) as tmp:
            with encode_slot(fmt):
                run_stream(ffmpeg.output(video, str(tmp), **x264_output_args(fmt)))
            _check_frames(tmp, frames, f"seam {list(runs)}")
    return out, True


def _run_streams(runs: Sequence[Run], fmt: OutputFormat) -> list:
    """Decode exactly frames [start, end) of each run's conformed clip, as filter streams.

    Each clip is opened once (a clip may appear twice in one seam) and split.
    """
    by_clip: dict[Path, list[int]] = {}
    for i, run in enumerate(runs):
        by_clip.setdefault(run.clip, []).append(i)
    streams: list = [None] * len(runs)
    for clip, members in by_clip.items():
        first = min(runs[i].start for i in members)
        kwargs = {}
        if first > 0:
            # Seek half a frame early: the accurate seek then keeps frame `first` first
            # whatever the rounding of the seconds value, and decodes only from its GOP.
            kwargs["ss"] = f"{(first - 0.5) / fmt.fps:.6f}"
        branches = fan_out(ffmpeg.input(str(clip), **kwargs).video, len(members))
        for i, branch in zip(members, branches):
            streams[i] = frame_range(branch, runs[i].start - first, runs[i].end - first, fmt)
    return streams


def frame_range(stream, start: int, end: int, fmt: OutputFormat):
    """Keep frames [start, end) of a stream and restamp them 0, 1/fps, 2/fps, ..."""
    return (stream.filter("trim", start_frame=start, end_frame=end)
            .filter("setpts", f"N/({fmt.fps}*TB)")
            .filter("fps", fps=fmt.fps))


def fan_out(stream, n: int, *, audio: bool = False) -> list:
    """Return ``n`` copies of a stream (a split filter when n > 1; a filter output feeds one)."""
    if n == 1:
        return [stream]
    node = stream.filter_multi_output("asplit" if audio else "split", n)
    return [node.stream(i) for i in range(n)]


def chain(streams: Sequence, lengths: Sequence[int], joins: Sequence[Join],
          fmt: OutputFormat):
    """Join video streams left to right with cuts or xfades; return (yuv420p stream, frames).

    ``streams[i]`` must hold ``lengths[i]`` frames at ``fmt.fps`` starting at pts 0.
    A transition of T frames overlaps the end of what came before by T frames.
    """
    video, total = streams[0], lengths[0]
    for stream, length, join in zip(streams[1:], lengths[1:], joins):
        if join.frames == 0:
            video = (ffmpeg.concat(_convertible(video), _convertible(stream), n=2, v=1, a=0)
                     .filter("fps", fps=fmt.fps))
        else:
            video = ffmpeg.filter(
                [_convertible(video), _convertible(stream)], "xfade",
                transition=join.transition, duration=f"{join.frames / fmt.fps:.6f}",
                offset=f"{(total - join.frames) / fmt.fps:.6f}")
        total += length - join.frames
    return _convertible(video).filter("format", "yuv420p"), total


def _convertible(stream):
    """Let the graph change the pixel format here, losslessly for untouched frames.

    xfade works in yuv444p; the scaler ffmpeg would insert uses bicubic chroma
    resampling, which blurs the chroma of every frame passing through (measured:
    ~35 dB). Nearest-neighbour 420 -> 444 -> 420 is exact.
    """
    return stream.filter("scale", flags="neighbor")


def _check_frames(path: Path, expected: int, what: str) -> None:
    """Fail loudly when a piece does not hold exactly the frames planned for it."""
    got = count_video_packets(path)
    if got != expected:
        raise ReelflowError(f"{what}: ffmpeg wrote {got} frames where {expected} were planned")
