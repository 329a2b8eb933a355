"""Procedural clips: one deterministic H.264 MP4 and a JPEG thumbnail per generation.

A clip shows a background colour and two moving boxes whose colours and motion come
from a hash of the request, the prompt text and a frame counter. The same request gives
byte-identical files: ffmpeg runs with bitexact flags, no metadata and a pinned x264
thread count. Text reaches drawtext through files in a private work directory with
relative names, so no prompt or path ever needs filtergraph escaping.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reelflow._binaries import ffmpeg_exe, font_file
from reelflow.errors import FfmpegError

from . import spec

__all__ = ["RenderJob", "render"]

log = logging.getLogger("reelflow.emulator.render")

_MAX_TEXT_LINES = 3
_X264_THREADS = "2"  # x264's output depends on its thread count: pin it for determinism


@dataclass(frozen=True)
class RenderJob:
    """What to render: the video request, the output resolution, optional audio."""

    request: dict[str, Any]
    resolution: str
    audio_prompt: str | None = None  # None: no audio track (Luma video has none)


def _palette(digest: bytes) -> dict[str, Any]:
    """Colours and motion parameters derived from the request's hash."""
    def colour(offset: int, low: int, high: int) -> str:
        channels = (low + digest[offset + i] * (high - low) // 255 for i in range(3))
        return "0x" + "".join(f"{c:02X}" for c in channels)

    return {
        "background": colour(0, 16, 110),
        "shape1": colour(3, 130, 255),
        "shape2": colour(6, 90, 230),
        "phases": [digest[9 + i] / 255 * 6.283 for i in range(4)],
        "periods": [1 + digest[13 + i] % 2 for i in range(4)],  # whole cycles per clip
        "drift": [1.15 + digest[17 + i] / 255 for i in range(4)],  # non-loop period factor
        "tone": 220 + digest[21] * 2,
    }


def _motion(axis: str, size: str, period: float, phase: float, amp: float) -> str:
    """An overlay coordinate expression: centred, swinging sinusoidally over time."""
    return f"({axis}-{size})/2*(1+{amp}*sin(2*PI*t/{period:.4f}+{phase:.4f}))"


def _wrap(text: str, width_px: int, font_px: int) -> str:
    """Wrap the prompt to the frame width in at most three lines (ellipsis beyond)."""
    per_line = max(8, int(width_px / (font_px * 0.62)))
    lines = textwrap.wrap(" ".join(text.split()), per_line) or [""]
    if len(lines) > _MAX_TEXT_LINES:
        lines = lines[:_MAX_TEXT_LINES]
        lines[-1] = lines[-1][: per_line - 1] + "\u2026"
    return "\n".join(lines)


def _font_sizes(width: int, height: int) -> tuple[int, int]:
    """Prompt and label font sizes, from the short side so portrait frames fit too."""
    short = min(width, height)
    return max(12, short // 18), max(10, short // 32)


def _filtergraph(job: RenderJob, width: int, height: int, seconds: float,
                 look: dict[str, Any]) -> str:
    """Build the filter_complex: moving boxes, prompt, label, counter; split for the thumb."""
    loop = bool(job.request.get("loop"))
    periods = [seconds / k if loop else seconds * d
               for k, d in zip(look["periods"], look["drift"])]
    ph = look["phases"]
    text_px, small_px = _font_sizes(width, height)
    graph = [
        f"[0:v][1:v]overlay=x='{_motion('W', 'w', periods[0], ph[0], 0.8)}'"
        f":y='{_motion('H', 'h', periods[1], ph[1], 0.7)}'[a]",
        f"[a][2:v]overlay=x='{_motion('W', 'w', periods[2], ph[2], 0.9)}'"
        f":y='{_motion('H', 'h', periods[3], ph[3], 0.9)}'[b]",
        f"[b]drawtext=fontfile=font.ttf:textfile=prompt.txt:expansion=none:fontsize={text_px}"
        f":fontcolor=white:box=1:boxcolor=black@0.55:boxborderw={text_px // 3}"
        f":line_spacing={text_px // 4}:x=(w-tw)/2:y=h-th-{height // 10},"
        f"drawtext=fontfile=font.ttf:textfile=label.txt:expansion=none:fontsize={small_px}"
        f":fontcolor=white@0.85:x={small_px}:y={small_px},"
        f"drawtext=fontfile=font.ttf:text='%{{n}}':fontsize={small_px}"
        f":fontcolor=white@0.85:x=w-tw-{small_px}:y={small_px},"
        "format=yuv420p,split[v][t]",
    ]
    if job.audio_prompt is not None:
        graph.append("[3:a]volume=0.25[aud]")
    return ";".join(graph)


def _command(job: RenderJob, width: int, height: int, frames: int,
             look: dict[str, Any]) -> list[str]:
    """The ffmpeg argv, run inside the work directory (relative file names only)."""
    seconds = frames / spec.FPS
    side1, side2 = (min(width, height) // 4) // 2 * 2, (min(width, height) // 8) // 2 * 2
    argv = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-fflags", "+bitexact",
            "-f", "lavfi", "-i", f"color=c={look['background']}:s={width}x{height}:r={spec.FPS}",
            "-f", "lavfi", "-i", f"color=c={look['shape1']}:s={side1}x{side1}:r={spec.FPS}",
            "-f", "lavfi", "-i", f"color=c={look['shape2']}:s={side2}x{side2}:r={spec.FPS}"]
    if job.audio_prompt is not None:
        tone = look["tone"] + sum(job.audio_prompt.encode("utf-8")) % 200
        argv += ["-f", "lavfi", "-i",
                 f"sine=frequency={tone}:sample_rate=48000:duration={seconds:g}"]
    argv += ["-filter_complex", _filtergraph(job, width, height, seconds, look),
             "-map", "[v]", "-frames:v", str(frames),
             "-c:v", "libx264", "-preset", "ultrafast", "-threads", _X264_THREADS,
             "-pix_fmt", "yuv420p", "-r", str(spec.FPS)]
    if job.audio_prompt is not None:
        argv += ["-map", "[aud]", "-c:a", "aac", "-b:a", "96k", "-flags:a", "+bitexact"]
    argv += ["-flags:v", "+bitexact", "-map_metadata", "-1", "-movflags", "+faststart",
             "-f", "mp4", "out.mp4",
             "-map", "[t]", "-frames:v", "1", "-q:v", "3", "-flags:v", "+bitexact",
             "-map_metadata", "-1", "-f", "image2", "thumb.jpg"]
    return argv


def _prepare_workdir(workdir: Path, job: RenderJob, width: int, height: int) -> None:
    """Write the text files and make the font reachable under a relative name."""
    try:
        os.symlink(font_file(), workdir / "font.ttf")
    except OSError:  # file systems without symlinks
        shutil.copyfile(font_file(), workdir / "font.ttf")
    prompt = job.request.get("prompt") or "(no prompt)"
    text_px, _ = _font_sizes(width, height)
    (workdir / "prompt.txt").write_text(_wrap(prompt, width, text_px), encoding="utf-8")
    aspect = job.request.get("aspect_ratio") or spec.DEFAULT_ASPECT_RATIO
    duration = job.request.get("duration") or spec.DEFAULT_DURATION
    label = f"{job.request.get('model')}  {job.resolution}  {aspect}  {duration}"
    if job.audio_prompt is not None:
        label += "  +audio"
    (workdir / "label.txt").write_text(label, encoding="utf-8")


def render(job: RenderJob, mp4_path: Path, jpg_path: Path) -> None:
    """Render ``job`` to ``mp4_path`` and its first frame to ``jpg_path``, atomically.

    Both files appear by ``os.replace`` (thumbnail first, video last), so a reader that
    sees the MP4 also sees the JPEG and never a half-written file.
    """
    width, height = spec.frame_size(job.request, job.resolution)
    frames = spec.frame_count(job.request)
    look = _palette(bytes.fromhex(spec.content_hash(job.request)))
    mp4_path.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=".render-", dir=mp4_path.parent))
    try:
        _prepare_workdir(workdir, job, width, height)
        argv = _command(job, width, height, frames, look)
        log.debug("rendering %s (%dx%d, %d frames)", mp4_path.name, width, height, frames)
        proc = subprocess.run(argv, cwd=workdir, capture_output=True, text=True)
        if proc.returncode != 0:
            raise FfmpegError(argv, proc.returncode, proc.stderr[-4000:])
        os.replace(workdir / "thumb.jpg", jpg_path)
        os.replace(workdir / "out.mp4", mp4_path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
