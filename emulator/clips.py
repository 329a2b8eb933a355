"""Procedural clips: one deterministic H.264 MP4 and a JPEG thumbnail per generation.

A clip shows a background colour and two moving boxes whose colours and motion come
from a hash of the request, the prompt text and a frame counter. A clip with keyframes
is a slow zoom/pan over the keyframe images instead: frame0 alone starts on its image
and zooms in, frame1 alone zooms out to end on its image, both crossfade from the
first to the second over the whole clip. The same request gives
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

from reelflow.emulator import spec

__all__ = ["ClipJob", "make_clip"]

log = logging.getLogger("reelflow.emulator.clips")

_MAX_TEXT_LINES = 3
_X264_THREADS = "2"  # x264's output depends on its thread count: pin it for determinism


@dataclass(frozen=True)
class ClipJob:
    """What to render: the video request, the output resolution, optional audio."""

    request: dict[str, Any]
    resolution: str
    audio_prompt: str | None = None  # None: no audio track (Luma video has none)
    #: (("frame0", path), ("frame1", path)): local keyframe images, when the request has any.
    frames: tuple[tuple[str, Path], ...] = ()


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


def _filtergraph(job: ClipJob, width: int, height: int, seconds: float,
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


def _command(job: ClipJob, width: int, height: int, frames: int,
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
    argv += ["-filter_complex", _filtergraph(job, width, height, seconds, look)]
    return argv + _outputs(job, frames)


#: How far a keyframe clip zooms in (1.12 = the last frame shows the middle 89%).
_STILL_ZOOM = 0.12


def _still_stream(index: int, direction: str, width: int, height: int, frames: int,
                  look: dict[str, Any]) -> str:
    """One looped image, cover-cropped to the frame, zooming in (start) or out (end).

    At zoom 1 the frame is the whole cropped image, so a start frame is the image itself
    and an end image is reached exactly on the last frame.
    """
    progress = f"on/{max(frames - 1, 1)}"
    if direction == "out":
        progress = f"(1-{progress})"
    pan_x, pan_y = (0.25 + look["phases"][i] / 6.283 / 2 for i in (0, 1))
    return (f"[{index}:v]scale={width}:{height}:force_original_aspect_ratio=increase,"
            f"crop={width}:{height},setsar=1,format=yuv420p,"
            f"zoompan=z='1+{_STILL_ZOOM}*{progress}':x='(iw-iw/zoom)*{pan_x:.4f}'"
            f":y='(ih-ih/zoom)*{pan_y:.4f}':d=1:s={width}x{height}:fps={spec.FPS}[s{index}]")


def _still_command(job: ClipJob, width: int, height: int, frames: int,
                   look: dict[str, Any]) -> list[str]:
    """The ffmpeg argv of a keyframe clip (images given as absolute paths)."""
    images = dict(job.frames)
    argv = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-fflags", "+bitexact"]
    graph, names = [], [n for n in ("frame0", "frame1") if n in images]
    for index, name in enumerate(names):
        argv += ["-loop", "1", "-framerate", str(spec.FPS), "-i", str(images[name])]
        direction = "in" if name == "frame0" else "out"
        graph.append(_still_stream(index, direction, width, height, frames, look))
    if len(names) == 2:
        graph.append(f"[s0][s1]xfade=transition=fade:duration={(frames - 1) / spec.FPS:.6f}"
                     ":offset=0[m]")
    _, small_px = _font_sizes(width, height)
    graph.append(
        f"[{'m' if len(names) == 2 else 's0'}]"
        f"drawtext=fontfile=font.ttf:textfile=label.txt:expansion=none:fontsize={small_px}"
        f":fontcolor=white@0.85:x={small_px}:y={small_px},"
        f"drawtext=fontfile=font.ttf:text='%{{n}}':fontsize={small_px}"
        f":fontcolor=white@0.85:x=w-tw-{small_px}:y={small_px},format=yuv420p,split[v][t]")
    if job.audio_prompt is not None:
        tone = look["tone"] + sum(job.audio_prompt.encode("utf-8")) % 200
        argv += ["-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate=48000"
                 f":duration={frames / spec.FPS:g}"]
        graph.append(f"[{len(names)}:a]volume=0.25[aud]")
    return argv + ["-filter_complex", ";".join(graph)] + _outputs(job, frames)


def _outputs(job: ClipJob, frames: int) -> list[str]:
    """The output half of the argv: bit-exact H.264 MP4 (+AAC) and the JPEG thumbnail."""
    argv = ["-map", "[v]", "-frames:v", str(frames),
            "-c:v", "libx264", "-preset", "ultrafast", "-threads", _X264_THREADS,
            "-pix_fmt", "yuv420p", "-r", str(spec.FPS)]
    if job.audio_prompt is not None:
        argv += ["-map", "[aud]", "-c:a", "aac", "-b:a", "96k", "-flags:a", "+bitexact"]
    return argv + ["-flags:v", "+bitexact", "-map_metadata", "-1", "-movflags", "+faststart",
                   "-f", "mp4", "out.mp4",
                   "-map", "[t]", "-frames:v", "1", "-q:v", "3", "-flags:v", "+bitexact",
                   "-map_metadata", "-1", "-f", "image2", "thumb.jpg"]


def _prepare_workdir(workdir: Path, job: ClipJob, width: int, height: int) -> None:
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


def make_clip(job: ClipJob, mp4_path: Path, jpg_path: Path) -> None:
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
        command = _still_command if job.frames else _command
        argv = command(job, width, height, frames, look)
        log.debug("rendering %s (%dx%d, %d frames)", mp4_path.name, width, height, frames)
        proc = subprocess.run(argv, cwd=workdir, capture_output=True, text=True)
        if proc.returncode != 0:
            raise FfmpegError(argv, proc.returncode, proc.stderr[-4000:])
        os.replace(workdir / "thumb.jpg", jpg_path)
        os.replace(workdir / "out.mp4", mp4_path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
