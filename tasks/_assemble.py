"""The smart render: conform once, copy GOP spans, re-encode only seams, one audio pass.

See shared/media-notes.md ("The smart render that worked") for why it is built this way.
The audio mix (music bed, ducking, loudness) lives in :mod:`reelflow.tasks._audio`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import ffmpeg
from pydantic import BaseModel

from reelflow.errors import ReelflowError

from reelflow.tasks._audio import (AudioMix, audio_output_args, audio_track, check_music,
                                   encoded_track)
from reelflow.tasks._ffmpeg import (
    RECIPE_VERSION,
    OutputFormat,
    atomic_output,
    bitexact_args,
    cache_output,
    cached_file,
    content_key,
    run_stream,
    x264_output_args,
)
from reelflow.tasks._pieces import (CopyPiece, EncodePiece, Slot, TimelineItem, check_ranges,
                                    pieces_for, slots_for)
from reelflow.tasks._probe import count_video_packets
from reelflow.tasks._scratch import run_dir
from reelflow.tasks._verify import read_record
from reelflow.tasks._encode import (
    Join,
    chain,
    conform_cached,
    conform_filters,
    conformed_info,
    encode_piece,
    extract_span,
    fan_out,
    frame_range,
)

__all__ = ["AssemblyResult", "AudioMix", "assemble", "default_jobs"]

logger = logging.getLogger("reelflow.tasks.media")

class AssemblyResult(BaseModel):
    """The assembled file and what it took to make it.

    ``encoded_pieces`` counts x264 encodes this call ran (conformed clips and seams);
    ``reused_pieces`` counts conformed clips and video pieces found in the cache.
    Stream-copied spans count as reused once cached, as neither when first cut.
    """

    path: Path
    frames: int
    duration_s: float
    encoded_pieces: int
    reused_pieces: int
    #: The output's SHA-256, from the checked cache entry's record (nothing hashes it again).
    sha256: str | None = None
    #: The video pieces in output order, (content key, frames): frame k of the output is
    #: the frame at its offset in the piece that holds it, so a key names its pixels.
    pieces: list[tuple[str, int]] = []


def default_jobs() -> int:
    """Encodes to run at once: x264 threads well, but two overlap its serial parts."""
    return max(1, min(4, os.cpu_count() or 1))


def assemble(items: list[TimelineItem], fmt: OutputFormat, out_path: str | Path,
             cache_dir: str | Path, *, jobs: int | None = None,
             mix: AudioMix | None = None) -> AssemblyResult:
    """Assemble ``items`` into ``out_path`` (H.264 + AAC mp4), re-encoding as little as possible.

    Item i contributes ``round(length_s * fps)`` frames from ``round(start_s * fps)`` of
    its conformed clip; a transition of ``round(transition_s * fps)`` frames overlaps it
    with the next item. GOP spans nothing touches are stream-copied from the conformed
    clips; transitions (widened to GOP boundaries) and partial GOPs at trim edges are
    re-encoded; every piece is cached by a hash of its inputs. The audio track is built
    in one pass (silence where a source has none), mixed per ``mix`` and encoded once
    (AAC) in the mux with ``+faststart``. The same inputs give the same bytes: the
    finished file is cached too, keyed by the pieces, the audio slots and the mix
    (settings and music hash), so a new mix re-renders only the audio and the mux.

    Args:
        items: the timeline, in order.
        fmt: the delivery format.
        out_path: the file to write (atomically: temp file, then os.replace).
        cache_dir: the content-addressed cache (conform/, pieces/, final/).
        jobs: encodes run at once (default :func:`default_jobs`).
        mix: music bed, ducking and loudness target; None keeps the clips' audio as it
            is (no music, no normalisation).

    Returns:
        AssemblyResult with the frame count, duration and encoded/reused piece counts.

    Raises:
        ValueError: a transition does not fit its neighbours, an item runs past its clip,
            or the music file is missing or has no audio.
        FfmpegError: an ffmpeg command failed.
    """
    slots = slots_for(items, fmt.fps)
    check_music(mix)
    cache_dir, out_path = Path(cache_dir), Path(out_path)
    jobs = jobs or default_jobs()
    sources = {it.source_sha256: it.source for it in items}  # conform each content once
    conformed = dict(zip(sources, _parallel(jobs, [
        (lambda sha=sha, src=src: conform_cached(src, sha, fmt, cache_dir))
        for sha, src in sources.items()])))
    clips = [conformed[it.source_sha256][0] for it in items]
    encoded = sum(done for _, done in conformed.values())
    reused = len(conformed) - encoded
    totals = [conformed_info(clip).frames for clip in clips]
    check_ranges(slots, totals, fmt.fps)
    pieces = pieces_for(slots, clips, totals, fmt)
    frames = sum(p.frames for p in pieces)
    audio = [_has_audio(it.source) for it in items]
    final_key = {
        "pieces": [p.key for p in pieces], "fmt": fmt.key(), "recipe": RECIPE_VERSION,
        "audio": [[sl.sha256, a, sl.start, sl.frames, sl.t_out] for sl, a in zip(slots, audio)],
    }
    if mix is not None:  # absent for None, so plain sequences keep their cache entries
        final_key["mix"] = mix.key()
    final = Path(cache_dir, "final", content_key(final_key) + ".mp4")
    if cached_file(final):
        reused += len({p.key for p in pieces})
    else:
        paths, new, old = _make_pieces(pieces, fmt, cache_dir, jobs)
        encoded, reused = encoded + new, reused + old
        _mux(paths, [it.source for it in items], audio, slots, fmt, final, frames, mix)
    record = read_record(final)  # checked (cached_file) or just written with its record
    with atomic_output(out_path) as tmp:
        shutil.copyfile(final, tmp)
    logger.info("assembled %d items into %s: %d frames, %d encoded, %d reused",
                len(items), out_path, frames, encoded, reused)
    return AssemblyResult(path=out_path, frames=frames, duration_s=frames / fmt.fps,
                          encoded_pieces=encoded, reused_pieces=reused,
                          sha256=record.sha256 if record is not None else None,
                          pieces=[(p.key, p.frames) for p in pieces])


def _parallel(jobs: int, calls: Sequence[Callable]) -> list:
    """Run the calls on ``jobs`` threads (each waits on an ffmpeg process) in order."""
    if jobs <= 1 or len(calls) <= 1:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda call: call(), calls))


def _make_pieces(pieces: list[CopyPiece | EncodePiece], fmt: OutputFormat, cache_dir: Path,
                 jobs: int) -> tuple[list[Path], int, int]:
    """Make (or find) every piece file; return their paths in order, encodes and reuses."""
    unique: dict[str, CopyPiece | EncodePiece] = {p.key: p for p in pieces}
    hits = {key for key, p in unique.items()
            if cached_file(Path(cache_dir, "pieces", f"{key}.mp4"))
            or (isinstance(p, CopyPiece) and p.run.frames == p.total)}  # the clip itself

    def make(piece: CopyPiece | EncodePiece) -> tuple[Path, bool]:
        if isinstance(piece, CopyPiece):
            run = piece.run
            return extract_span(run.clip, run.start, run.end, piece.total, fmt, cache_dir,
                                piece.key)
        return encode_piece(piece.runs, piece.joins, fmt, cache_dir, piece.key)

    made = dict(zip(unique, _parallel(jobs, [(lambda p=p: make(p)) for p in unique.values()])))
    encoded = sum(done for _, done in made.values())
    return [made[p.key][0] for p in pieces], encoded, len(hits)


def _has_audio(source: Path) -> bool:
    with av.open(str(source)) as container:
        return bool(container.streams.audio)


def _mux(pieces: list[Path], sources: list[Path], has_audio: list[bool], slots: list[Slot],
         fmt: OutputFormat, final: Path, frames: int, mix: AudioMix | None = None) -> None:
    """Join the video pieces by stream copy and mux them with the sequence's audio track.

    The track (:func:`_audio.encoded_track`: one pass, loudness measured first when a
    target is set, AAC encoded once) is kept in the cache by what it hears, so a rebuild
    that changes no audio copies it.
    """
    cache_dir = final.parent.parent  # final is <cache_dir>/final/<key>.mp4
    with tempfile.TemporaryDirectory(dir=run_dir(cache_dir)) as tmpdir:
        listing = Path(tmpdir, "pieces.txt")
        listing.write_text("".join(f"file '{_concat_quote(p)}'\n" for p in pieces))
        video = ffmpeg.input(str(listing), f="concat", safe=0).video
        audio = ffmpeg.input(str(encoded_track([src if a else None for src, a in zip(
            sources, has_audio)], slots, fmt.fps, mix, cache_dir))).audio
        # The concat demuxer adds up piece durations in microseconds; snap every
        # timestamp back onto the frame grid (512 ticks per frame) so steps stay exact.
        tick = fmt.timescale // fmt.fps
        snap = f"setts=pts=round(PTS/{tick})*{tick}:dts=round(DTS/{tick})*{tick}"
        with cache_output(final, cache_dir) as tmp:
            run_stream(ffmpeg.output(
                video, audio, str(tmp), **{"c:v": "copy", "bsf:v": snap, "c:a": "copy"},
                movflags="+faststart",
                video_track_timescale=fmt.timescale, **bitexact_args()))
            got = count_video_packets(tmp)
            if got != frames:
                raise ReelflowError(f"assembled {got} frames where {frames} were planned")


def _concat_quote(path: Path) -> str:
    # The concat demuxer's quoting: close the quote, escaped quote, reopen.
    return str(Path(path).resolve()).replace("'", "'\\''")


def _single_pass_reference(items: list[TimelineItem], fmt: OutputFormat, out_path: Path,
                           *, crf: int | None = None) -> Path:
    """Render the same sequence in one filtergraph from the sources (the slow, simple way).

    Used by tests and benchmarks to compare against :func:`assemble`: every source is
    conformed in the graph, trimmed, chained with the same cut/xfade rules, and the
    audio built by the same :func:`audio_track`; one x264 encode, one AAC encode.
    """
    slots = slots_for(items, fmt.fps)
    groups: dict[Path, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(it.source, []).append(i)
    streams: list = [None] * len(items)
    for source, members in groups.items():
        conformed = conform_filters(ffmpeg.input(str(source)).video, fmt)
        for i, branch in zip(members, fan_out(conformed, len(members))):
            streams[i] = frame_range(branch, slots[i].start, slots[i].end, fmt)
    joins = [Join(sl.transition, sl.t_out) for sl in slots[:-1]]
    video, _ = chain(streams, [sl.frames for sl in slots], joins, fmt)
    audio = audio_track([it.source if _has_audio(it.source) else None for it in items],
                        slots, fmt.fps)
    enc = x264_output_args(fmt if crf is None else fmt.model_copy(update={"crf": crf}))
    out_path = Path(out_path)
    with atomic_output(out_path) as tmp:
        run_stream(ffmpeg.output(video, audio, str(tmp),
                                 **enc, **audio_output_args(), movflags="+faststart"))
    return out_path
